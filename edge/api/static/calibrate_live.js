/*
 * Live view of one camera for the calibration page (branch IT): the MJPEG preview with the pipeline's
 * overlays, a full-size snapshot, and the face-size check with its suggestion.
 *
 *   window.CalibrateLive.mount(element, cameraId, lang[, options]) -> { unmount(), refreshFaces() }
 *
 * lang is 'zh' (the default) or 'en'. The token is options.token, else CalibrateLive.token, else this tab's
 * sessionStorage 'sb_calibrate_token', else ?token= in the page's address. The preview stops while the tab
 * is hidden and when unmount() is called, so an idle page costs the box nothing.
 */
(function () {
  'use strict';

  var TEXT = {
    zh: {
      preview: '实时预览', snapshot: '快照', faces: '人脸尺寸', checking: '正在检测人脸…',
      paused: '预览已暂停（页面不可见）', loading: '正在连接摄像头…', failed: '无法显示预览：',
      legend: '图例：蓝=员工 绿=顾客 金=VIP 白=人脸 红线=服务中；区域：橙=等候区 紫=柜台 蓝=员工区 白=识别区',
      minFace: '最小人脸尺寸', found: '检测到人脸', tooSmall: '过小', ok: '人脸尺寸合适，无需调整。',
      px: 'px', noToken: '缺少访问令牌'
    },
    en: {
      preview: 'Live preview', snapshot: 'Snapshot', faces: 'Face size', checking: 'Looking for faces…',
      paused: 'Preview paused (page hidden)', loading: 'Connecting to the camera…', failed: 'Cannot show the preview: ',
      legend: 'Legend: blue = staff, green = customer, gold = VIP, white = face, red line = in service; zones: ' +
              'orange = waiting, magenta = counter, blue = staff area, white = ROI',
      minFace: 'Minimum face size', found: 'Faces found', tooSmall: 'too small', ok: 'Face sizes are fine; ' +
              'nothing to change.',
      px: 'px', noToken: 'Missing access token'
    }
  };

  function tokenFrom(options) {
    if (options && options.token) { return options.token; }
    if (window.CalibrateLive.token) { return window.CalibrateLive.token; }
    try {
      var saved = window.sessionStorage.getItem('sb_calibrate_token');
      if (saved) { return saved; }
    } catch (e) { /* storage blocked */ }
    return new URLSearchParams(window.location.search).get('token') || '';
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function mount(element, cameraId, lang, options) {
    var t = TEXT[lang === 'en' ? 'en' : 'zh'];
    var opts = options || {};
    var token = tokenFrom(opts);
    var fps = opts.fps || 5;
    var base = (opts.base || '') + '/api/calibrate/cameras/' + encodeURIComponent(cameraId);
    var mode = 'preview';
    var stopped = false;

    element.textContent = '';
    var root = el('div', 'cl-live');
    root.setAttribute('data-camera', cameraId);
    var bar = el('div', 'cl-bar');
    var buttons = {};
    ['preview', 'snapshot', 'faces'].forEach(function (name) {
      var b = el('button', 'cl-mode', t[name]);
      b.type = 'button';
      b.setAttribute('data-mode', name);
      b.addEventListener('click', function () { show(name); });
      buttons[name] = b;
      bar.appendChild(b);
    });
    var status = el('div', 'cl-status', '');
    status.setAttribute('role', 'status');
    var img = el('img', 'cl-image');
    img.alt = cameraId;
    img.style.maxWidth = '100%';
    var report = el('div', 'cl-faces');
    var legend = el('div', 'cl-legend', t.legend);
    root.appendChild(bar);
    root.appendChild(img);
    root.appendChild(status);
    root.appendChild(report);
    root.appendChild(legend);
    element.appendChild(root);

    function url(path, extra) {
      var q = new URLSearchParams(extra || {});
      q.set('token', token);
      return base + path + '?' + q.toString();
    }

    function say(text) { status.textContent = text; }

    img.addEventListener('error', function () {
      if (stopped || !img.getAttribute('src')) { return; }
      // an <img> hides the answer's body: ask again with fetch to show the reason
      fetch(img.getAttribute('src'), { method: 'GET' }).then(function (r) {
        return r.json().then(function (body) {
          var d = body && body.detail;
          say(t.failed + ((d && d.message) || r.status));
        });
      }).catch(function () { say(t.failed + cameraId); });
    });
    img.addEventListener('load', function () { if (status.textContent === t.loading) { say(''); } });

    function closeStream() { img.removeAttribute('src'); }

    function show(name) {
      mode = name;
      Object.keys(buttons).forEach(function (k) { buttons[k].setAttribute('aria-pressed', String(k === name)); });
      report.textContent = '';
      if (!token) { say(t.noToken); return; }
      closeStream();
      if (name === 'preview') {
        say(t.loading);
        img.src = url('/preview.mjpg', { fps: String(fps) });
      } else if (name === 'snapshot') {
        say('');
        img.src = url('/snapshot.jpg', { undistort: opts.undistort ? '1' : '0', t: String(Date.now()) });
      } else {
        refreshFaces();
      }
    }

    function refreshFaces() {
      say(t.checking);
      fetch(url('/faces'), { headers: { 'Accept': 'application/json' } }).then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, body: body }; });
      }).then(function (res) {
        if (!res.ok) { say(t.failed + ((res.body.detail && res.body.detail.message) || '')); return; }
        var b = res.body;
        img.src = url('/faces.jpg', { t: String(Date.now()) });
        say(t.minFace + ' ' + b.min_face_px + ' ' + t.px + ' · ' + t.found + ' ' + b.faces.length +
            (b.too_small ? ' · ' + t.tooSmall + ' ' + b.too_small : ''));
        report.textContent = '';
        var list = el('ul', 'cl-face-list');
        b.faces.forEach(function (f) {
          var li = el('li', f.ok ? 'cl-face-ok' : 'cl-face-small', f.side_px + ' ' + t.px +
                      (f.ok ? '' : ' (' + t.tooSmall + ')'));
          list.appendChild(li);
        });
        report.appendChild(list);
        var advice = el('p', 'cl-suggestion', b.suggestion ? b.suggestion[lang === 'en' ? 'en' : 'zh'] : t.ok);
        report.appendChild(advice);
      }).catch(function (e) { say(t.failed + e); });
    }

    function onVisibility() {
      if (mode !== 'preview' || stopped) { return; }
      if (document.hidden) { closeStream(); say(t.paused); } else { show('preview'); }
    }
    document.addEventListener('visibilitychange', onVisibility);

    show(opts.mode || 'preview');

    return {
      unmount: function () {
        stopped = true;
        closeStream();
        document.removeEventListener('visibilitychange', onVisibility);
        element.textContent = '';
      },
      refreshFaces: function () { show('faces'); },
      show: show
    };
  }

  window.CalibrateLive = window.CalibrateLive || {};
  window.CalibrateLive.mount = mount;
})();

/* The branch-IT calibration page: cameras, zones, floor homography, lens, face size, live view, versions.
   Simplified Chinese first, English as an option. The page holds no data of its own: it reads the token from
   ?token= (then keeps it in this tab's sessionStorage only) and calls /api/calibrate/* with it. */
(function () {
  'use strict';

  var I18N = {
    zh: {
      title: '摄像头标定',
      camera: '摄像头',
      tabCameras: '摄像头',
      tabZones: '区域',
      tabFloor: '地面标定',
      tabLens: '镜头',
      tabFaces: '人脸尺寸',
      tabLive: '实时预览',
      tabVersions: '版本',
      addCamera: '添加摄像头',
      editCamera: '编辑摄像头',
      camId: '编号',
      camName: '名称',
      camRole: '用途',
      camUrl: '视频源地址',
      roleEntrance: '入口',
      roleLobby: '大堂',
      roleCounter: '柜台',
      roleParking: '停车场',
      testConnection: '测试连接',
      saveCamera: '保存摄像头',
      cancel: '取消',
      edit: '编辑',
      disable: '停用',
      enable: '启用',
      connecting: '正在连接…',
      connectionOk: '连接成功',
      connectionFailed: '连接失败',
      noSnapshot: '暂无画面',
      stateOk: '正常',
      processed: '已处理 {n} 帧',
      stateDisabled: '已停用',
      stateNotOpened: '未能打开',
      zoneKind: '区域类型',
      zoneName: '名称',
      zoneNew: '新区域',
      undo: '撤销一点',
      clear: '清除',
      zoneDelete: '删除此区域',
      save: '保存',
      zoneHint: '在画面上点击添加顶点；拖动顶点可移动；靠近已有顶点或画面边缘时自动吸附。',
      kindFace: '人脸识别区域（入口）',
      kindPlate: '车牌入口区域',
      kindStaff: '员工区',
      kindWaiting: '等候区',
      kindCounter: '柜台区',
      needThree: '区域至少需要 3 个顶点',
      needName: '请填写区域名称',
      floorHint: '在画面上点击至少 4 个地面标记，并输入它们在地面上的坐标（米）。',
      imagePx: '图像像素',
      floorX: '地面 X (米)',
      floorY: '地面 Y (米)',
      errM: '误差 (米)',
      errPx: '误差 (像素)',
      fit: '计算',
      saveFloor: '保存地面标定',
      topDown: '俯视预览',
      rms: '均方根误差：{m} 米，{px} 像素',
      outliers: '被剔除的点：{n}',
      refused: '无法标定：{reason}',
      floorCounterOnly: '地面标定只用于柜台摄像头',
      needFloorNumbers: '第 {n} 点的地面坐标不是数字',
      remove: '删除',
      board: '棋盘格内角点',
      squareMm: '方格边长 (毫米)',
      grab: '抓取快照',
      upload: '上传图片',
      calibrate: '标定',
      saveLens: '保存镜头参数',
      lensHint: '从不同角度拍摄至少 3 张完整的棋盘格，再点击“标定”。',
      before: '原始画面',
      after: '去畸变后',
      lensResult: '重投影均方根误差 {rms} 像素；找到棋盘格 {found}/{total} 张；fx={fx} fy={fy} k1={k1}',
      boardFound: '找到棋盘格',
      boardMissing: '未找到棋盘格',
      checkFaces: '检查人脸尺寸',
      facesResult: '{n} 张人脸，其中 {small} 张小于 min_face_px={min} 像素',
      noFaces: '当前画面没有人脸',
      liveMissing: '实时预览组件未加载',
      rollbackPrevious: '回滚到上一版本',
      rollbackTo: '回滚到此版本',
      version: '版本',
      time: '时间',
      user: '用户',
      summary: '说明',
      current: '（当前）',
      showDiff: '查看差异',
      saved: '已保存为版本 {v}，已应用到摄像头：{cams}',
      rolledBack: '已回滚，现为版本 {v}，已应用到摄像头：{cams}',
      none: '无',
      noPrevious: '没有可回滚的上一版本',
      failed: '操作失败：{reason}',
      sumCameraEdited: '修改摄像头设置',
      sumCameraAdded: '添加摄像头',
      sumEnabled: '启用摄像头',
      sumDisabled: '停用摄像头',
      sumFloor: '地面标定',
      sumLens: '镜头参数（均方根误差 {rms} 像素）',
      sumZone: '区域：{zone}',
      sumZoneDeleted: '删除区域：{zone}',
      sumRollback: '回滚到版本 {v}',
      sumOriginal: '首次标定保存前的配置',
      sumOutside: '在本页之外修改的配置',
      noToken: '缺少访问令牌：请使用带 token 的链接打开本页',
      denied: '令牌无效，或没有网点 IT（branch_it）权限'
    },
    en: {
      title: 'Camera calibration',
      camera: 'Camera',
      tabCameras: 'Cameras',
      tabZones: 'Zones',
      tabFloor: 'Floor',
      tabLens: 'Lens',
      tabFaces: 'Face size',
      tabLive: 'Live view',
      tabVersions: 'Versions',
      addCamera: 'Add a camera',
      editCamera: 'Edit camera',
      camId: 'Id',
      camName: 'Name',
      camRole: 'Role',
      camUrl: 'Source URL',
      roleEntrance: 'Entrance',
      roleLobby: 'Lobby',
      roleCounter: 'Counter',
      roleParking: 'Parking',
      testConnection: 'Test connection',
      saveCamera: 'Save camera',
      cancel: 'Cancel',
      edit: 'Edit',
      disable: 'Disable',
      enable: 'Enable',
      connecting: 'Connecting…',
      connectionOk: 'Connected',
      connectionFailed: 'Connection failed',
      noSnapshot: 'No picture yet',
      stateOk: 'OK',
      processed: '{n} frames processed',
      stateDisabled: 'Disabled',
      stateNotOpened: 'Not opened',
      zoneKind: 'Zone kind',
      zoneName: 'Name',
      zoneNew: 'New zone',
      undo: 'Undo point',
      clear: 'Clear',
      zoneDelete: 'Delete this zone',
      save: 'Save',
      zoneHint: 'Click the picture to add vertices; drag a vertex to move it; vertices snap to other vertices and to the edges.',
      kindFace: 'Face zone (entrance)',
      kindPlate: 'Plate entry zone',
      kindStaff: 'Staff zone',
      kindWaiting: 'Waiting zone',
      kindCounter: 'Counter zone',
      needThree: 'A zone needs at least 3 vertices',
      needName: 'Give the zone a name',
      floorHint: 'Click at least 4 floor marks on the picture and type their floor coordinates in metres.',
      imagePx: 'Image pixels',
      floorX: 'Floor X (m)',
      floorY: 'Floor Y (m)',
      errM: 'Error (m)',
      errPx: 'Error (px)',
      fit: 'Fit',
      saveFloor: 'Save floor calibration',
      topDown: 'Top-down preview',
      rms: 'RMS error: {m} m, {px} px',
      outliers: 'Points set aside: {n}',
      refused: 'Cannot calibrate: {reason}',
      floorCounterOnly: 'Floor calibration is for counter cameras only',
      needFloorNumbers: 'The floor coordinates of point {n} are not numbers',
      remove: 'Remove',
      board: 'Board inner corners',
      squareMm: 'Square side (mm)',
      grab: 'Grab snapshot',
      upload: 'Upload images',
      calibrate: 'Calibrate',
      saveLens: 'Save lens',
      lensHint: 'Take at least 3 snapshots of the whole board at different angles, then press Calibrate.',
      before: 'Original',
      after: 'Undistorted',
      lensResult: 'Reprojection RMS {rms} px; board found in {found}/{total}; fx={fx} fy={fy} k1={k1}',
      boardFound: 'board found',
      boardMissing: 'no board',
      checkFaces: 'Check face sizes',
      facesResult: '{n} faces, {small} smaller than min_face_px={min} px',
      noFaces: 'No face in the current picture',
      liveMissing: 'The live view component is not loaded',
      rollbackPrevious: 'Roll back to the previous version',
      rollbackTo: 'Roll back to this version',
      version: 'Version',
      time: 'Time',
      user: 'User',
      summary: 'Summary',
      current: ' (current)',
      showDiff: 'Show diff',
      saved: 'Saved as version {v}; applied to cameras: {cams}',
      rolledBack: 'Rolled back; now version {v}; applied to cameras: {cams}',
      none: 'none',
      noPrevious: 'There is no previous version to roll back to',
      failed: 'Failed: {reason}',
      sumCameraEdited: 'camera settings changed',
      sumCameraAdded: 'camera added',
      sumEnabled: 'camera enabled',
      sumDisabled: 'camera disabled',
      sumFloor: 'floor calibration',
      sumLens: 'lens (RMS {rms} px)',
      sumZone: 'zone: {zone}',
      sumZoneDeleted: 'zone deleted: {zone}',
      sumRollback: 'rollback to version {v}',
      sumOriginal: 'the config as it was before the first calibration save',
      sumOutside: 'changed outside the calibration page',
      noToken: 'Missing access token: open this page with a link that includes a token',
      denied: 'Invalid token, or it lacks the branch IT (branch_it) role'
    }
  };

  var params = new URLSearchParams(window.location.search);
  function store(kind, key, value) { try { window[kind].setItem(key, value); } catch (e) { /* private mode */ } }
  function load(kind, key) { try { return window[kind].getItem(key); } catch (e) { return null; } }
  var lang = params.get('lang') === 'en' || (params.get('lang') !== 'zh' && load('localStorage', 'sb_lang') === 'en')
    ? 'en' : 'zh';
  var token = params.get('token') || load('sessionStorage', 'sb_calibrate_token') || '';
  if (params.has('token')) {
    store('sessionStorage', 'sb_calibrate_token', token);
    params.delete('token');
    var rest = params.toString();
    window.history.replaceState(null, '', window.location.pathname + (rest ? '?' + rest : ''));
  }

  function t(key, vars) {
    var s = (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key;
    if (vars) Object.keys(vars).forEach(function (k) { s = s.split('{' + k + '}').join(String(vars[k])); });
    return s;
  }
  function $(sel) { return document.querySelector(sel); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function status(text, ok) {
    var s = $('#status');
    s.textContent = text;
    s.className = ok === undefined ? '' : (ok ? 'ok' : 'bad');
  }
  function reasonOf(body, resp) {
    var d = body && body.detail;
    if (d && typeof d === 'object' && d.message) return d.message;
    if (typeof d === 'string') return d;
    return 'HTTP ' + resp.status;
  }

  // ---------------------------------------------------------------- API
  function api(method, path, body, isForm) {
    var headers = { 'Authorization': 'Bearer ' + token, 'Accept': 'application/json' };
    var init = { method: method, headers: headers };
    if (body !== undefined) {
      if (isForm) init.body = body;
      else { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (resp.status === 401 || resp.status === 403) showDenied();
        if (!resp.ok) { var err = new Error(reasonOf(data, resp)); err.status = resp.status; throw err; }
        return data;
      });
    });
  }
  function withToken(path) { return path + (path.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token); }
  function showDenied() {
    $('#notice').hidden = false;
    $('#notice .text').textContent = t(token ? 'denied' : 'noToken');
    $('main').hidden = true;
  }

  // ---------------------------------------------------------------- state
  var cameras = [];       // [{id, config, health}]
  var cameraId = null;
  var tab = 'cameras';
  function current() { return cameras.filter(function (c) { return c.id === cameraId; })[0] || null; }
  function copy(obj) { return JSON.parse(JSON.stringify(obj)); }

  function loadCameras() {
    return api('GET', '/api/calibrate/cameras').then(function (list) {
      cameras = list;
      var sel = $('#camera');
      sel.textContent = '';
      list.forEach(function (c) { sel.appendChild(el('option', { value: c.id }, (c.config.name || c.id) + ' (' + c.id + ')')); });
      if (!cameraId || !current()) cameraId = list.length ? list[0].id : null;
      sel.value = cameraId || '';
      renderCameras();
    });
  }

  function saveCamera(config, summary, isNew) {
    var path = isNew ? '/api/calibrate/cameras' : '/api/calibrate/cameras/' + encodeURIComponent(config.id);
    return api(isNew ? 'POST' : 'PUT', path, { camera: config, summary: summary }).then(function (res) {
      status(t('saved', { v: res.version, cams: res.changed.join(', ') || t('none') }), true);
      return loadCameras().then(function () { return res; });
    }, function (err) { status(t('failed', { reason: err.message }), false); throw err; });
  }

  // ---------------------------------------------------------------- snapshots
  var snapSize = { w: 1280, h: 720 };
  function loadSnapshot(img, onSize) {
    var stage = img.parentNode;
    if (!cameraId) return;
    img.onload = function () {
      stage.classList.remove('noimage');
      snapSize = { w: img.naturalWidth, h: img.naturalHeight };
      onSize();
    };
    img.onerror = function () { stage.classList.add('noimage'); img.removeAttribute('src'); onSize(); };
    img.src = withToken('/api/calibrate/cameras/' + encodeURIComponent(cameraId) + '/snapshot.jpg?t=' + Date.now());
  }
  function sizeCanvas(canvas) { canvas.width = snapSize.w; canvas.height = snapSize.h; }
  function canvasPoint(canvas, ev) {
    var r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
  }
  function scaleOf(canvas) { var r = canvas.getBoundingClientRect(); return r.width ? canvas.width / r.width : 1; }

  // ---------------------------------------------------------------- cameras tab
  var editing = null;
  function stateText(h) {
    if (h.state === 'disabled') return t('stateDisabled');
    if (h.state === 'not_opened') return t('stateNotOpened') + (h.error ? '：' + h.error : '');
    return (h.healthy ? t('stateOk') : h.state) + (h.error ? '：' + h.error : '') + ' · ' + t('processed', { n: h.processed });
  }
  function renderCameras() {
    var box = $('#camera-list');
    box.textContent = '';
    cameras.forEach(function (c) {
      var card = el('div', { 'class': 'card', 'data-camera': c.id });
      card.appendChild(el('strong', {}, (c.config.name || c.id) + ' · ' + c.id));
      card.appendChild(el('div', { 'class': c.health.healthy ? 'state-ok' : 'state-bad' }, stateText(c.health)));
      if (c.config.enabled !== false) {
        var img = el('img', { alt: c.id });
        img.onerror = function () { img.replaceWith(el('div', { 'class': 'state-bad' }, t('noSnapshot'))); };
        img.src = withToken('/api/calibrate/cameras/' + encodeURIComponent(c.id) + '/snapshot.jpg');
        card.appendChild(img);
      }
      var row = el('div', { 'class': 'row' });
      var edit = el('button', { type: 'button' }, t('edit'));
      edit.onclick = function () { startEdit(c); };
      var toggle = el('button', { type: 'button' }, t(c.config.enabled === false ? 'enable' : 'disable'));
      toggle.onclick = function () {
        var cfg = copy(c.config);
        cfg.enabled = c.config.enabled === false;
        saveCamera(cfg, t(cfg.enabled ? 'sumEnabled' : 'sumDisabled'), false).catch(function () {});
      };
      row.appendChild(edit);
      row.appendChild(toggle);
      card.appendChild(row);
      box.appendChild(card);
    });
  }
  function startEdit(c) {
    editing = c;
    var f = $('#camera-form');
    f.elements.id.value = c.id;
    f.elements.id.readOnly = true;
    f.elements.name.value = c.config.name || '';
    f.elements.role.value = c.config.role;
    f.elements.url.value = c.config.source.url;
    $('#camera-form-title').textContent = t('editCamera');
    $('#camera-cancel').hidden = false;
  }
  function endEdit() {
    editing = null;
    var f = $('#camera-form');
    f.reset();
    f.elements.id.readOnly = false;
    $('#connection-result').textContent = '';
    $('#camera-form-title').textContent = t('addCamera');
    $('#camera-cancel').hidden = true;
  }
  $('#camera-cancel').onclick = endEdit;
  $('#camera-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = ev.target;
    var cfg = editing ? copy(editing.config) : { id: f.elements.id.value.trim(), source: {} };
    cfg.name = f.elements.name.value.trim();
    cfg.role = f.elements.role.value;
    cfg.source.url = f.elements.url.value.trim();
    if (cfg.role !== 'counter') delete cfg.counter;
    saveCamera(cfg, t(editing ? 'sumCameraEdited' : 'sumCameraAdded'), !editing).then(endEdit, function () {});
  });
  $('#test-connection').onclick = function () {
    var out = $('#connection-result');
    out.textContent = t('connecting');
    api('POST', '/api/calibrate/test-connection', { url: $('#camera-form').elements.url.value.trim() }).then(function (r) {
      out.textContent = r.ok ? t('connectionOk') + ' ' + r.width + '×' + r.height : t('connectionFailed') + '：' + r.reason;
      out.className = r.ok ? '' : 'error';
      if (r.jpeg_base64) out.appendChild(el('img', { src: 'data:image/jpeg;base64,' + r.jpeg_base64, alt: '' }));
    }, function (err) { out.textContent = t('connectionFailed') + '：' + err.message; out.className = 'error'; });
  };

  // ---------------------------------------------------------------- zones tab
  // A zone kind: where it lives in a camera's config. Counter zones are named lists; the others one polygon.
  var KINDS = {
    face: { label: 'kindFace', roles: ['entrance', 'lobby'], named: false },
    plate: { label: 'kindPlate', roles: ['parking'], named: false },
    staff: { label: 'kindStaff', roles: ['counter'], named: false },
    waiting: { label: 'kindWaiting', roles: ['counter'], named: true, list: 'waiting_zones' },
    counter: { label: 'kindCounter', roles: ['counter'], named: true, list: 'counter_zones' }
  };
  var COLORS = { face: '#22c55e', plate: '#22c55e', staff: '#3b82f6', waiting: '#f59e0b', counter: '#ef4444' };
  var zoneKind = null;
  var zonePoints = [];    // the polygon being edited
  var zoneIndex = -1;     // which named zone is edited (-1: a new one)
  var drag = -1;

  function zonesOf(cfg, kind) {
    var counter = cfg.counter || {};
    if (kind === 'face' || kind === 'plate') return cfg.zone ? [{ name: 'zone', points: cfg.zone }] : [];
    if (kind === 'staff') return counter.staff_zone ? [{ name: 'staff_zone', points: counter.staff_zone }] : [];
    return counter[KINDS[kind].list] || [];
  }
  function setupZones() {
    var cam = current();
    var sel = $('#zone-kind');
    sel.textContent = '';
    if (!cam) return;
    Object.keys(KINDS).forEach(function (k) {
      if (KINDS[k].roles.indexOf(cam.config.role) >= 0) sel.appendChild(el('option', { value: k }, t(KINDS[k].label)));
    });
    if (!zoneKind || KINDS[zoneKind].roles.indexOf(cam.config.role) < 0) zoneKind = sel.options[0].value;
    sel.value = zoneKind;
    pickZone(zonesOf(cam.config, zoneKind).length ? 0 : -1);
    loadSnapshot($('#tab-zones img.snap'), function () { sizeCanvas($('#zone-canvas')); drawZones(); });
  }
  function pickZone(index) {
    var cam = current();
    var kind = KINDS[zoneKind];
    var zones = zonesOf(cam.config, zoneKind);
    zoneIndex = index;
    zonePoints = index >= 0 && zones[index] ? copy(zones[index].points) : [];
    $('#zone-name-label').hidden = !kind.named;
    var pick = $('#zone-pick');
    pick.textContent = '';
    zones.forEach(function (z, i) { if (kind.named) pick.appendChild(el('option', { value: String(i) }, z.name)); });
    pick.hidden = !kind.named || !zones.length || index < 0;
    if (index >= 0) pick.value = String(index);
    $('#zone-name').value = index >= 0 && zones[index] ? zones[index].name : (kind.named ? t(kind.label) : '');
    drawZones();
  }
  $('#zone-kind').onchange = function () { zoneKind = this.value; pickZone(zonesOf(current().config, zoneKind).length ? 0 : -1); };
  $('#zone-pick').onchange = function () { pickZone(Number(this.value)); };
  $('#zone-new').onclick = function () { pickZone(-1); };
  $('#zone-undo').onclick = function () { zonePoints.pop(); drawZones(); };
  $('#zone-clear').onclick = function () { zonePoints = []; drawZones(); };

  function snapTargets() {
    var cam = current();
    var out = [];
    Object.keys(KINDS).forEach(function (k) {
      if (KINDS[k].roles.indexOf(cam.config.role) < 0) return;
      zonesOf(cam.config, k).forEach(function (z, i) {
        if (k === zoneKind && i === zoneIndex) return;
        z.points.forEach(function (p) { out.push(p); });
      });
    });
    return out;
  }
  function snap(p, canvas) {
    var r = 12 * scaleOf(canvas);
    var best = null, bestD = r;
    snapTargets().forEach(function (q) {
      var d = Math.hypot(q[0] - p[0], q[1] - p[1]);
      if (d <= bestD) { best = q; bestD = d; }
    });
    if (best) return [best[0], best[1]];
    var x = p[0] < r ? 0 : (p[0] > canvas.width - r ? canvas.width : p[0]);
    var y = p[1] < r ? 0 : (p[1] > canvas.height - r ? canvas.height : p[1]);
    return [Math.round(x), Math.round(y)];
  }
  function drawPolygon(g, pts, color, width, fill) {
    if (!pts.length) return;
    g.beginPath();
    pts.forEach(function (p, i) { if (i) g.lineTo(p[0], p[1]); else g.moveTo(p[0], p[1]); });
    if (pts.length > 2) g.closePath();
    g.strokeStyle = color; g.lineWidth = width; g.stroke();
    if (fill && pts.length > 2) { g.globalAlpha = 0.18; g.fillStyle = color; g.fill(); g.globalAlpha = 1; }
  }
  function drawZones() {
    var canvas = $('#zone-canvas');
    var cam = current();
    var g = canvas.getContext('2d');
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (!cam) return;
    var s = scaleOf(canvas);
    Object.keys(KINDS).forEach(function (k) {
      if (KINDS[k].roles.indexOf(cam.config.role) < 0) return;
      zonesOf(cam.config, k).forEach(function (z, i) {
        if (k === zoneKind && i === zoneIndex) return;
        drawPolygon(g, z.points, COLORS[k], 2 * s, true);
      });
    });
    drawPolygon(g, zonePoints, '#ffffff', 3 * s, true);
    zonePoints.forEach(function (p) {
      g.beginPath(); g.arc(p[0], p[1], 6 * s, 0, 2 * Math.PI);
      g.fillStyle = COLORS[zoneKind]; g.fill(); g.strokeStyle = '#fff'; g.lineWidth = 2 * s; g.stroke();
    });
  }
  (function () {
    var canvas = $('#zone-canvas');
    canvas.addEventListener('mousedown', function (ev) {
      var p = canvasPoint(canvas, ev);
      var r = 10 * scaleOf(canvas);
      drag = -1;
      zonePoints.forEach(function (q, i) { if (Math.hypot(q[0] - p[0], q[1] - p[1]) <= r) drag = i; });
      if (drag < 0) { zonePoints.push(snap(p, canvas)); drawZones(); }
    });
    canvas.addEventListener('mousemove', function (ev) {
      if (drag < 0) return;
      zonePoints[drag] = snap(canvasPoint(canvas, ev), canvas);
      drawZones();
    });
    window.addEventListener('mouseup', function () { drag = -1; });
  }());
  $('#zone-delete').onclick = function () {
    if (zoneIndex < 0) { zonePoints = []; drawZones(); return; }
    saveZone(null);
  };
  $('#zone-save').onclick = function () {
    if (zonePoints.length < 3) { status(t('needThree'), false); return; }
    if (KINDS[zoneKind].named && !$('#zone-name').value.trim()) { status(t('needName'), false); return; }
    saveZone(zonePoints);
  };
  function saveZone(points) {
    var cam = current();
    var cfg = copy(cam.config);
    var kind = KINDS[zoneKind];
    var name = $('#zone-name').value.trim();
    if (zoneKind === 'face' || zoneKind === 'plate') cfg.zone = points;
    else {
      cfg.counter = cfg.counter || {};
      if (zoneKind === 'staff') cfg.counter.staff_zone = points;
      else {
        var list = cfg.counter[kind.list] || [];
        if (points === null) list.splice(zoneIndex, 1);
        else if (zoneIndex >= 0) list[zoneIndex] = { name: name, points: points };
        else list.push({ name: name, points: points });
        cfg.counter[kind.list] = list;
      }
    }
    var zone = kind.named && name !== t(kind.label) ? t(kind.label) + ' ' + name : (kind.named ? name : t(kind.label));
    var summary = t(points === null ? 'sumZoneDeleted' : 'sumZone', { zone: zone });
    saveCamera(cfg, summary, false).then(function () {
      var zones = zonesOf(current().config, zoneKind);
      var at = zones.map(function (z) { return z.name; }).indexOf(name);
      pickZone(points === null ? (zones.length ? 0 : -1) : (kind.named ? at : 0));
    }, function () {});
  }

  // ---------------------------------------------------------------- floor tab
  var floorRows = [];  // [{img: [x, y], floor: ['', ''], err_m, err_px, inlier}]
  var floorFit = null;
  function setupFloor() {
    var cam = current();
    floorFit = null;
    floorRows = [];
    var floor = cam && cam.config.counter && cam.config.counter.floor;
    if (floor) {
      floor.image_points.forEach(function (p, i) {
        floorRows.push({ img: p, floor: [String(floor.floor_points[i][0]), String(floor.floor_points[i][1])] });
      });
    }
    $('#floor-error').textContent = '';
    $('#floor-rms').textContent = '';
    renderFloor();
    loadSnapshot($('#tab-floor img.snap'), function () { sizeCanvas($('#floor-canvas')); drawFloor(); });
  }
  function fmt(v, digits) { return v === undefined || v === null ? '' : Number(v).toFixed(digits); }
  function renderFloor() {
    var body = $('#floor-table tbody');
    body.textContent = '';
    floorRows.forEach(function (row, i) {
      var tr = el('tr', { 'data-point': String(i + 1) });
      tr.appendChild(el('td', {}, String(i + 1)));
      tr.appendChild(el('td', {}, Math.round(row.img[0]) + ', ' + Math.round(row.img[1])));
      [0, 1].forEach(function (axis) {
        var td = el('td');
        var input = el('input', { inputmode: 'decimal', 'aria-label': (axis ? 'Y' : 'X') + (i + 1) });
        input.value = row.floor[axis];
        input.oninput = function () { row.floor[axis] = input.value; };
        td.appendChild(input);
        tr.appendChild(td);
      });
      var bad = row.inlier === false;
      tr.appendChild(el('td', { 'class': 'err-m' + (bad ? ' bad' : '') }, fmt(row.err_m, 3)));
      tr.appendChild(el('td', { 'class': 'err-px' + (bad ? ' bad' : '') }, fmt(row.err_px, 1)));
      var td = el('td');
      var del = el('button', { type: 'button' }, t('remove'));
      del.onclick = function () { floorRows.splice(i, 1); clearFit(); renderFloor(); drawFloor(); };
      td.appendChild(del);
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }
  function clearFit() {
    floorFit = null;
    floorRows.forEach(function (r) { r.err_m = r.err_px = r.inlier = undefined; });
    $('#floor-rms').textContent = '';
    drawTopDown();
  }
  function drawFloor() {
    var canvas = $('#floor-canvas');
    var g = canvas.getContext('2d');
    var s = scaleOf(canvas);
    g.clearRect(0, 0, canvas.width, canvas.height);
    floorRows.forEach(function (row, i) {
      g.beginPath(); g.arc(row.img[0], row.img[1], 7 * s, 0, 2 * Math.PI);
      g.fillStyle = row.inlier === false ? '#ef4444' : '#facc15'; g.fill();
      g.font = (18 * s) + 'px sans-serif'; g.fillStyle = '#fff';
      g.fillText(String(i + 1), row.img[0] + 9 * s, row.img[1] - 9 * s);
    });
  }
  $('#floor-canvas').addEventListener('click', function (ev) {
    var p = canvasPoint(ev.currentTarget, ev);
    floorRows.push({ img: [Math.round(p[0]), Math.round(p[1])], floor: ['', ''] });
    clearFit();
    renderFloor();
    drawFloor();
  });
  $('#floor-clear').onclick = function () { floorRows = []; clearFit(); renderFloor(); drawFloor(); $('#floor-error').textContent = ''; };
  function floorPoints() {
    return floorRows.map(function (r, i) {
      var x = Number(r.floor[0]), y = Number(r.floor[1]);
      if (r.floor[0] === '' || r.floor[1] === '' || !isFinite(x) || !isFinite(y)) throw new Error(t('needFloorNumbers', { n: i + 1 }));
      return [x, y];
    });
  }
  $('#floor-fit').onclick = function () {
    $('#floor-error').textContent = '';
    var floor;
    try { floor = floorPoints(); } catch (e) { $('#floor-error').textContent = t('refused', { reason: e.message }); return; }
    api('POST', '/api/calibrate/floor/fit', {
      image_points: floorRows.map(function (r) { return r.img; }), floor_points: floor, camera_id: cameraId
    }).then(function (fit) {
      floorFit = fit;
      floorRows.forEach(function (r, i) {
        r.err_m = fit.per_point_error_m[i]; r.err_px = fit.per_point_error_px[i]; r.inlier = fit.inliers[i];
      });
      var out = [];
      fit.inliers.forEach(function (k, i) { if (!k) out.push(i + 1); });
      $('#floor-rms').textContent = t('rms', { m: fmt(fit.rms_m, 3), px: fmt(fit.rms_px, 1) }) +
        (out.length ? '；' + t('outliers', { n: out.join(', ') }) : '');
      renderFloor(); drawFloor(); drawTopDown();
    }, function (err) {
      clearFit(); renderFloor(); drawFloor();
      $('#floor-error').textContent = t('refused', { reason: err.message });
    });
  };
  function drawTopDown() {
    var canvas = $('#floor-top');
    var g = canvas.getContext('2d');
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (!floorFit) return;
    var pts = [];
    floorRows.forEach(function (r) { pts.push([Number(r.floor[0]), Number(r.floor[1])]); });
    floorFit.zones.forEach(function (z) { z.points_m.forEach(function (p) { pts.push(p); }); });
    var xs = pts.map(function (p) { return p[0]; }), ys = pts.map(function (p) { return p[1]; });
    var minX = Math.min.apply(null, xs), maxX = Math.max.apply(null, xs);
    var minY = Math.min.apply(null, ys), maxY = Math.max.apply(null, ys);
    var pad = 20, k = Math.min((canvas.width - 2 * pad) / Math.max(maxX - minX, 0.1),
                               (canvas.height - 2 * pad) / Math.max(maxY - minY, 0.1));
    function map(p) { return [pad + (p[0] - minX) * k, canvas.height - pad - (p[1] - minY) * k]; }
    g.strokeStyle = '#e5e7eb';
    for (var m = Math.ceil(minX); m <= maxX; m++) { var a = map([m, minY]), b = map([m, maxY]); g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke(); }
    for (var n = Math.ceil(minY); n <= maxY; n++) { var c = map([minX, n]), d = map([maxX, n]); g.beginPath(); g.moveTo(c[0], c[1]); g.lineTo(d[0], d[1]); g.stroke(); }
    floorFit.zones.forEach(function (z) {
      var kind = { face_zone: 'face', plate_entry: 'plate', staff_zone: 'staff', waiting: 'waiting', counter: 'counter' }[z.kind];
      drawPolygon(g, z.points_m.map(map), COLORS[kind] || '#888', 2, true);
      var c0 = map(z.points_m[0]);
      g.fillStyle = '#111'; g.font = '12px sans-serif'; g.fillText(z.name, c0[0] + 3, c0[1] - 3);
    });
    floorRows.forEach(function (r, i) {
      var p = map([Number(r.floor[0]), Number(r.floor[1])]);
      g.beginPath(); g.arc(p[0], p[1], 4, 0, 2 * Math.PI); g.fillStyle = r.inlier === false ? '#ef4444' : '#111'; g.fill();
      g.fillText(String(i + 1), p[0] + 5, p[1] - 5);
    });
  }
  $('#floor-save').onclick = function () {
    var cam = current();
    if (cam.config.role !== 'counter') { $('#floor-error').textContent = t('floorCounterOnly'); return; }
    var floor;
    try { floor = floorPoints(); } catch (e) { $('#floor-error').textContent = t('refused', { reason: e.message }); return; }
    var cfg = copy(cam.config);
    cfg.counter = cfg.counter || {};
    cfg.counter.floor = { image_points: floorRows.map(function (r) { return r.img; }), floor_points: floor };
    saveCamera(cfg, t('sumFloor'), false).catch(function () {});
  };

  // ---------------------------------------------------------------- lens tab
  var shots = [];  // [{blob, name}]
  var lensFound = null;
  function renderShots() {
    var box = $('#lens-shots');
    box.textContent = '';
    shots.forEach(function (s, i) {
      var fig = el('figure');
      var img = el('img', { alt: s.name });
      img.src = URL.createObjectURL(s.blob);
      fig.appendChild(img);
      var found = lensFound ? (lensFound[i] ? t('boardFound') : t('boardMissing')) : '';
      fig.appendChild(el('figcaption', {}, (i + 1) + ' ' + found));
      box.appendChild(fig);
    });
  }
  $('#lens-grab').onclick = function () {
    fetch(withToken('/api/calibrate/cameras/' + encodeURIComponent(cameraId) + '/snapshot.jpg?t=' + Date.now()))
      .then(function (resp) {
        if (!resp.ok) return resp.json().then(function (b) { throw new Error(reasonOf(b, resp)); });
        return resp.blob();
      }).then(function (blob) { shots.push({ blob: blob, name: 'snapshot-' + (shots.length + 1) + '.jpg' }); lensFound = null; renderShots(); },
        function (err) { $('#lens-error').textContent = t('failed', { reason: err.message }); });
  };
  $('#lens-files').onchange = function () {
    Array.prototype.forEach.call(this.files, function (f) { shots.push({ blob: f, name: f.name }); });
    lensFound = null;
    renderShots();
  };
  $('#lens-clear').onclick = function () { shots = []; lensFound = null; lensResult = null; renderShots(); $('#lens-save').disabled = true; };
  var lensResult = null;
  $('#lens-run').onclick = function () {
    $('#lens-error').textContent = '';
    $('#lens-result').textContent = '';
    var form = new FormData();
    shots.forEach(function (s) { form.append('images', s.blob, s.name); });
    form.append('board', $('#lens-board').value.trim());
    form.append('square_mm', $('#lens-square').value.trim());
    api('POST', '/api/calibrate/lens', form, true).then(function (r) {
      lensResult = r;
      lensFound = r.found;
      renderShots();
      var found = r.found.filter(Boolean).length;
      $('#lens-result').textContent = t('lensResult', { rms: fmt(r.rms, 3), found: found, total: r.found.length,
        fx: fmt(r.lens.fx, 1), fy: fmt(r.lens.fy, 1), k1: fmt(r.lens.dist[0], 4) });
      $('#lens-before').src = 'data:image/jpeg;base64,' + r.original_jpeg;
      $('#lens-after').src = 'data:image/jpeg;base64,' + r.undistorted_jpeg;
      $('#lens-save').disabled = false;
    }, function (err) { $('#lens-error').textContent = t('refused', { reason: err.message }); });
  };
  $('#lens-save').onclick = function () {
    if (!lensResult) return;
    var cfg = copy(current().config);
    cfg.lens = lensResult.lens;
    saveCamera(cfg, t('sumLens', { rms: fmt(lensResult.rms, 3) }), false).catch(function () {});
  };

  // ---------------------------------------------------------------- face size tab
  $('#faces-check').onclick = function () {
    $('#faces-suggestion').textContent = '';
    api('GET', '/api/calibrate/cameras/' + encodeURIComponent(cameraId) + '/faces').then(function (r) {
      $('#faces-result').textContent = r.faces.length
        ? t('facesResult', { n: r.faces.length, small: r.too_small, min: r.min_face_px }) : t('noFaces');
      if (r.suggestion) $('#faces-suggestion').textContent = r.suggestion[lang] || r.suggestion.zh;
      var img = $('#faces-img');
      img.onload = function () {
        var canvas = $('#faces-canvas');
        canvas.width = r.width; canvas.height = r.height;
        var g = canvas.getContext('2d');
        r.faces.forEach(function (f) {
          g.strokeStyle = f.ok ? '#22c55e' : '#ef4444'; g.lineWidth = 3;
          g.strokeRect(f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1]);
          g.fillStyle = g.strokeStyle; g.font = '20px sans-serif';
          g.fillText(f.side_px + ' px', f.box[0], f.box[1] - 6);
        });
      };
      img.src = withToken('/api/calibrate/cameras/' + encodeURIComponent(cameraId) + '/snapshot.jpg?t=' + Date.now());
    }, function (err) { $('#faces-result').textContent = t('failed', { reason: err.message }); });
  };

  // ---------------------------------------------------------------- live tab
  var liveMounted = null;
  function setupLive() {
    var box = $('#live');
    if (liveMounted === cameraId + lang) return;
    box.textContent = '';
    liveMounted = cameraId + lang;
    withLive(function (live) {
      if (live) live.mount(box, cameraId, lang);
      else box.textContent = t('liveMissing');
    });
  }
  function withLive(then) {  // the live view's script is loaded the first time the tab is opened
    if (window.CalibrateLive && typeof window.CalibrateLive.mount === 'function') { then(window.CalibrateLive); return; }
    var script = el('script', { src: '/calibrate/static/calibrate_live.js' });
    script.onload = function () { then(window.CalibrateLive && window.CalibrateLive.mount ? window.CalibrateLive : null); };
    script.onerror = function () { then(null); };
    document.body.appendChild(script);
  }
  function leaveLive() {
    if (liveMounted === null) return;
    $('#live').textContent = '';  // closes the stream: the preview costs nothing while nobody watches
    liveMounted = null;
  }

  // ---------------------------------------------------------------- versions tab
  var versions = [];
  function loadVersions() {
    return api('GET', '/api/calibrate/versions').then(function (list) {
      versions = list;
      var body = $('#versions-table tbody');
      body.textContent = '';
      list.forEach(function (v) {
        var tr = el('tr', { 'data-version': String(v.version), 'class': v.current ? 'current' : '' });
        tr.appendChild(el('td', {}, String(v.version) + (v.current ? t('current') : '')));
        tr.appendChild(el('td', {}, v.at ? new Date(v.at).toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN') : ''));
        tr.appendChild(el('td', {}, v.user));
        tr.appendChild(el('td', {}, shownSummary(v.summary)));
        var td = el('td');
        var diff = el('button', { type: 'button' }, t('showDiff'));
        diff.onclick = function () {
          api('GET', '/api/calibrate/versions/' + v.version).then(function (d) { $('#version-diff').textContent = d.diff || ''; });
        };
        td.appendChild(diff);
        if (!v.current) {
          var back = el('button', { type: 'button', 'class': 'rollback' }, t('rollbackTo'));
          back.onclick = function () { rollback(v.version); };
          td.appendChild(back);
        }
        tr.appendChild(td);
        body.appendChild(tr);
      });
    }, function (err) { status(t('failed', { reason: err.message }), false); });
  }
  function shownSummary(text) {  // what the box itself writes, in the page's language
    var m = /^rollback to version (\d+)$/.exec(text);
    if (m) return t('sumRollback', { v: m[1] });
    if (text === I18N.en.sumOriginal) return t('sumOriginal');
    if (text === I18N.en.sumOutside) return t('sumOutside');
    return text;
  }
  function rollback(version) {
    api('POST', '/api/calibrate/versions/' + version + '/rollback').then(function (res) {
      status(t('rolledBack', { v: res.version, cams: res.changed.join(', ') || t('none') }), true);
      return Promise.all([loadCameras(), loadVersions()]);
    }, function (err) { status(t('failed', { reason: err.message }), false); });
  }
  $('#rollback-previous').onclick = function () {
    var at = versions.map(function (v) { return v.current; }).indexOf(true);
    var previous = at >= 0 ? versions[at + 1] : null;
    if (!previous) { status(t('noPrevious'), false); return; }
    rollback(previous.version);
  };

  // ---------------------------------------------------------------- tabs, language, start
  function show(name) {
    tab = name;
    document.querySelectorAll('.tabs button').forEach(function (b) {
      b.setAttribute('aria-selected', b.getAttribute('data-tab') === name ? 'true' : 'false');
    });
    document.querySelectorAll('.tab').forEach(function (s) { s.hidden = s.id !== 'tab-' + name; });
    if (name !== 'live') leaveLive();
    if (name === 'zones') setupZones();
    else if (name === 'floor') setupFloor();
    else if (name === 'live') setupLive();
    else if (name === 'versions') loadVersions();
    else if (name === 'cameras') loadCameras();
  }
  document.querySelectorAll('.tabs button').forEach(function (b) {
    b.onclick = function () { show(b.getAttribute('data-tab')); };
  });
  $('#camera').onchange = function () { cameraId = this.value; show(tab); };
  function translate() {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    document.title = t('title');
    document.querySelectorAll('[data-t]').forEach(function (e) { e.textContent = t(e.getAttribute('data-t')); });
  }
  $('#lang').onclick = function () {
    lang = lang === 'en' ? 'zh' : 'en';
    store('localStorage', 'sb_lang', lang);
    translate();
    show(tab);
  };
  translate();
  if (!token) { showDenied(); return; }
  loadCameras().then(function () { show(params.get('tab') || 'cameras'); }, function () {});
}());

/* The console pages' shared helpers (window.SB): strings (zh first, en option), the API caller with the
 * CSRF token, error texts, the top bar and small DOM helpers. Each page holds its own strings in
 * <script type="application/json" id="i18n">{"zh": {...}, "en": {...}}</script>; the common ones are below,
 * between the I18N markers (tests/console/test_pages.py reads both and checks that zh and en have the same keys).
 */
(function () {
  'use strict';

  var COMMON = /*I18N*/{
    "zh": {
      "brand": "智慧网点 · 中央控制台",
      "nav_persons": "人员",
      "nav_enrol": "登记",
      "nav_import": "批量导入",
      "nav_audit": "审计日志",
      "nav_branches": "网点",
      "nav_stats": "统计",
      "logout": "退出登录",
      "langButton": "EN",
      "langTitle": "Switch to English",
      "loading": "正在加载…",
      "none": "无",
      "yes": "是",
      "no": "否",
      "all": "全部",
      "cancel": "取消",
      "role_vip": "VIP 客户",
      "role_staff": "员工",
      "scope_all": "全部网点",
      "scope_region": "区域：{region}",
      "scope_branches": "指定网点：{branches}",
      "user_admin": "管理员",
      "user_enroller": "登记员",
      "user_compliance": "合规",
      "user_branch_it": "网点 IT",
      "user_regional_manager": "区域经理",
      "err_bad_credentials": "用户名或密码错误",
      "err_locked": "尝试次数过多，已暂时锁定，请 {retry_after} 秒后再试",
      "err_unauthorized": "登录已失效，请重新登录",
      "err_forbidden": "没有权限执行此操作",
      "err_csrf": "安全校验失败，请刷新页面后重试",
      "err_not_found": "找不到该记录（可能已被删除）",
      "err_invalid": "填写有误：{detail}",
      "err_no_face": "未检测到人脸",
      "err_multiple_faces": "照片中有多张人脸，只能有一人",
      "err_face_too_small": "人脸太小，请使用离得更近的照片",
      "err_blurred": "照片模糊",
      "err_profile": "侧脸角度过大，请使用正脸照片",
      "err_low_score": "人脸不清晰，检测置信度过低",
      "err_eyes_closed": "眼睛似乎是闭着的，请换一张照片",
      "err_duplicate": "该人脸已登记为 {name}（{branch}，相似度 {score}）",
      "err_plate_taken": "车牌已被登记：{plate} 属于 {name}（{branch}）",
      "err_plate_taken_nomatch": "车牌已被他人登记",
      "err_duplicate_nomatch": "该人脸已登记为其他人员",
      "err_invalid_plate": "车牌号码无效",
      "err_no_consent": "缺少授权记录：授权用途、日期和经办人均为必填",
      "err_too_many_photos": "每人最多 5 张照片",
      "err_not_same_person": "这张照片与该人员已有的照片不是同一人",
      "err_last_photo": "至少需要保留一张照片",
      "err_empty": "文件为空",
      "err_too_large": "文件太大",
      "err_not_an_image": "不是有效的图片（支持 JPEG、PNG、WebP、BMP、GIF）",
      "err_truncated": "图片已损坏或不完整",
      "err_decompression_bomb": "图片尺寸过大，无法安全解码",
      "err_bad_csv": "CSV 文件有误",
      "err_bad_zip": "照片压缩包有误",
      "err_missing_field": "缺少必填字段",
      "err_duplicate_row": "CSV 中编号重复",
      "err_invalid_role": "类型必须是 vip 或 staff",
      "err_invalid_scope": "识别范围格式有误",
      "err_invalid_date": "日期格式有误（应为 YYYY-MM-DD）",
      "err_no_photo": "没有照片",
      "err_photo_missing": "压缩包中找不到照片",
      "err_cannot_change": "导入不能修改该字段",
      "err_external_id_taken": "编号已被使用",
      "err_duplicate_photo": "这张照片已经登记过",
      "err_conflict": "操作冲突，请重试",
      "err_busy": "人脸引擎繁忙，请稍后重试",
      "err_unknown_branch": "没有该网点",
      "err_invalid_branch": "网点代码无效",
      "err_invalid_consent": "授权记录有误",
      "err_bad_evidence": "授权凭证文件无效（支持 PDF、JPEG、PNG）",
      "err_evidence_too_large": "授权凭证文件太大",
      "err_invalid_timezone": "时区无效",
      "err_last_admin": "不能停用或降级最后一名管理员",
      "err_network": "无法连接服务器，请稍后重试",
      "err_http": "请求失败（HTTP {status}）",
      "act_enrol": "登记",
      "act_person_update": "修改资料",
      "act_plate_add": "添加车牌",
      "act_plate_remove": "删除车牌",
      "act_photo_view": "查看照片",
      "act_photo_add": "添加照片",
      "act_photo_delete": "删除照片",
      "act_photo_check": "照片质量检测",
      "act_search_by_photo": "以图搜人",
      "act_consent_add": "添加授权记录",
      "act_consent_view": "查看授权凭证",
      "act_erase": "删除全部资料（被遗忘权）",
      "act_duplicate_override": "确认非同一人后登记",
      "act_import": "批量导入",
      "act_import_create": "导入新建",
      "act_import_update": "导入更新",
      "act_import_start": "开始导入",
      "act_photo_remove": "删除照片",
      "act_branch_create": "新建网点",
      "act_branch_update": "修改网点",
      "act_edge_register": "注册边缘设备",
      "act_import_done": "导入完成",
      "act_token_create": "创建访问令牌",
      "act_token_revoke": "撤销访问令牌",
      "act_user_create": "新建用户",
      "act_user_update": "修改用户",
      "act_login_locked": "登录锁定",
      "act_login_ok": "登录成功",
      "act_login_failed": "登录失败",
      "act_locked": "账户锁定",
      "act_logout": "退出登录",
      "unknownBranch": "未知网点"
    },
    "en": {
      "brand": "Smart branch · Central console",
      "nav_persons": "Persons",
      "nav_enrol": "Enrol",
      "nav_import": "Bulk import",
      "nav_audit": "Audit log",
      "nav_branches": "Branches",
      "nav_stats": "Statistics",
      "logout": "Sign out",
      "langButton": "中文",
      "langTitle": "切换到中文",
      "loading": "Loading…",
      "none": "None",
      "yes": "Yes",
      "no": "No",
      "all": "All",
      "cancel": "Cancel",
      "role_vip": "VIP customer",
      "role_staff": "Staff",
      "scope_all": "All branches",
      "scope_region": "Region: {region}",
      "scope_branches": "Branches: {branches}",
      "user_admin": "Administrator",
      "user_enroller": "Enroller",
      "user_compliance": "Compliance",
      "user_branch_it": "Branch IT",
      "user_regional_manager": "Regional manager",
      "err_bad_credentials": "Wrong user name or password",
      "err_locked": "Too many attempts: locked, try again in {retry_after} s",
      "err_unauthorized": "Your session has ended; please sign in again",
      "err_forbidden": "You are not allowed to do this",
      "err_csrf": "Security check failed; reload the page and try again",
      "err_not_found": "Not found (it may have been deleted)",
      "err_invalid": "Invalid input: {detail}",
      "err_no_face": "No face was found",
      "err_multiple_faces": "The photo holds more than one face",
      "err_face_too_small": "The face is too small; use a closer photo",
      "err_blurred": "The photo is blurred",
      "err_profile": "The head is turned too far; use a frontal photo",
      "err_low_score": "The face is unclear (low detector score)",
      "err_eyes_closed": "The eyes look closed; use another photo",
      "err_duplicate": "This face is already enrolled as {name} ({branch}, similarity {score})",
      "err_plate_taken": "Plate already registered: {plate} belongs to {name} ({branch})",
      "err_plate_taken_nomatch": "The plate is registered to someone else",
      "err_duplicate_nomatch": "This face is already enrolled as another person",
      "err_invalid_plate": "Invalid plate number",
      "err_no_consent": "Consent missing: purpose, date and operator are required",
      "err_too_many_photos": "At most 5 photos per person",
      "err_not_same_person": "This photo is not the same person as the existing photos",
      "err_last_photo": "A person keeps at least one photo",
      "err_empty": "The file is empty",
      "err_too_large": "The file is too large",
      "err_not_an_image": "Not an image (JPEG, PNG, WebP, BMP or GIF)",
      "err_truncated": "The image is truncated or corrupt",
      "err_decompression_bomb": "The image is too large to decode safely",
      "err_bad_csv": "The CSV file is not valid",
      "err_bad_zip": "The photo archive is not valid",
      "err_missing_field": "A required field is missing",
      "err_duplicate_row": "The id appears twice in the CSV",
      "err_invalid_role": "The type must be vip or staff",
      "err_invalid_scope": "The scope is not valid",
      "err_invalid_date": "The date is not valid (YYYY-MM-DD)",
      "err_no_photo": "No photo",
      "err_photo_missing": "The photo is not in the archive",
      "err_cannot_change": "An import cannot change this field",
      "err_external_id_taken": "The id is already in use",
      "err_duplicate_photo": "This photo is already enrolled",
      "err_conflict": "Conflicting change; please retry",
      "err_busy": "The face engine is busy; try again shortly",
      "err_unknown_branch": "No such branch",
      "err_invalid_branch": "Invalid branch code",
      "err_invalid_consent": "The consent record is not valid",
      "err_bad_evidence": "Invalid evidence file (PDF, JPEG or PNG)",
      "err_evidence_too_large": "The evidence file is too large",
      "err_invalid_timezone": "Invalid time zone",
      "err_last_admin": "The last administrator cannot be disabled or demoted",
      "err_network": "Cannot reach the server; please try again",
      "err_http": "Request failed (HTTP {status})",
      "act_enrol": "Enrolment",
      "act_person_update": "Details changed",
      "act_plate_add": "Plate added",
      "act_plate_remove": "Plate removed",
      "act_photo_view": "Photo viewed",
      "act_photo_add": "Photo added",
      "act_photo_delete": "Photo deleted",
      "act_photo_check": "Photo quality check",
      "act_search_by_photo": "Search by photo",
      "act_consent_add": "Consent recorded",
      "act_consent_view": "Consent evidence viewed",
      "act_erase": "Erasure (right to be forgotten)",
      "act_duplicate_override": "Enrolled after confirming another person",
      "act_import": "Bulk import",
      "act_import_create": "Created by import",
      "act_import_update": "Updated by import",
      "act_import_start": "Import started",
      "act_photo_remove": "Photo removed",
      "act_branch_create": "Branch created",
      "act_branch_update": "Branch changed",
      "act_edge_register": "Edge box registered",
      "act_import_done": "Import finished",
      "act_token_create": "API token created",
      "act_token_revoke": "API token revoked",
      "act_user_create": "User created",
      "act_user_update": "User changed",
      "act_login_locked": "Sign-in locked",
      "act_login_ok": "Signed in",
      "act_login_failed": "Sign-in failed",
      "act_locked": "Account locked",
      "act_logout": "Signed out",
      "unknownBranch": "unknown branch"
    }
  }/*END*/;

  var LANG_KEY = 'sb_console_lang';
  var CSRF_COOKIE = 'sb_console_csrf';
  var UNSAFE = { POST: true, PUT: true, PATCH: true, DELETE: true };
  // Each page and who may use it (the API checks the same roles; the bar only hides what would be refused).
  var NAV = [['/persons', 'nav_persons', ['admin', 'enroller', 'compliance', 'branch_it']],
             ['/enrol', 'nav_enrol', ['admin', 'enroller']],
             ['/import', 'nav_import', ['admin', 'enroller']],
             ['/audit', 'nav_audit', ['admin', 'compliance']],
             ['/branches', 'nav_branches', null],
             ['/stats', 'nav_stats', ['admin', 'regional_manager', 'compliance']]];
  var ROLES_OF = { enrol: ['admin', 'enroller'], erase: ['admin', 'enroller', 'compliance'] };

  function readPageStrings() {
    var node = document.getElementById('i18n');
    if (!node) return { zh: {}, en: {} };
    try { return JSON.parse(node.textContent || '{}'); } catch (e) { return { zh: {}, en: {} }; }
  }
  var PAGE = readPageStrings();
  var lang = (function () {
    try { return window.localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh'; } catch (e) { return 'zh'; }
  })();
  var langListeners = [];

  function t(key, vars) {
    var s = (PAGE[lang] && PAGE[lang][key]) || (COMMON[lang] && COMMON[lang][key]) ||
      (PAGE.zh && PAGE.zh[key]) || COMMON.zh[key] || key;
    if (vars) {
      s = s.replace(/\{(\w+)\}/g, function (m, k) {
        return Object.prototype.hasOwnProperty.call(vars, k) && vars[k] != null ? String(vars[k]) : m;
      });
    }
    return s;
  }
  function has(key) { return !!((PAGE.zh && PAGE.zh[key]) || COMMON.zh[key]); }

  // Static texts: data-i18n (text), data-i18n-placeholder, data-i18n-title, data-i18n-aria.
  function applyI18n(root) {
    root = root || document;
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    var nodes = root.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = t(nodes[i].getAttribute('data-i18n'));
    var attrs = [['data-i18n-placeholder', 'placeholder'], ['data-i18n-title', 'title'], ['data-i18n-aria', 'aria-label']];
    for (var a = 0; a < attrs.length; a++) {
      var list = root.querySelectorAll('[' + attrs[a][0] + ']');
      for (var j = 0; j < list.length; j++) list[j].setAttribute(attrs[a][1], t(list[j].getAttribute(attrs[a][0])));
    }
    if (has('pageTitle')) document.title = t('pageTitle');
  }
  function setLang(next) {
    lang = next === 'en' ? 'en' : 'zh';
    try { window.localStorage.setItem(LANG_KEY, lang); } catch (e) { /* private mode */ }
    applyI18n();
    for (var i = 0; i < langListeners.length; i++) langListeners[i](lang);
  }
  function onLang(fn) { langListeners.push(fn); }

  // ---------------------------------------------------------------- DOM helpers
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = String(text);
    return node;
  }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function str(v) {
    if (typeof v === 'string') return v.trim();
    return typeof v === 'number' && isFinite(v) ? String(v) : '';
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function parseTime(value) {
    if (typeof value !== 'string' || !value) return null;
    var d = new Date(value.trim().replace(' ', 'T'));
    return isNaN(d.getTime()) ? null : d;
  }
  // Local (browser) time, YYYY-MM-DD HH:MM:SS; '—' when unreadable.
  function fmtTime(value) {
    var d = parseTime(value);
    if (!d) return '—';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function today() {
    var d = new Date();
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  }
  function num(v, digits) {
    return typeof v === 'number' && isFinite(v) ? v.toFixed(digits) : '—';
  }
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return '';
  }
  function scopeText(scope) {
    if (!scope || typeof scope !== 'object') return '—';
    if (scope.kind === 'all') return t('scope_all');
    if (scope.kind === 'region') return t('scope_region', { region: str(scope.region) || '—' });
    var codes = Array.isArray(scope.branches) ? scope.branches.join('、') : '';
    return t('scope_branches', { branches: codes || '—' });
  }
  function roleText(role) { return has('role_' + role) ? t('role_' + role) : str(role); }
  function actionText(action) { return has('act_' + action) ? t('act_' + action) : str(action); }
  // An audit row's detail (an object) as 'key: value; …'.
  function detailText(detail) {
    if (detail == null) return '';
    if (typeof detail !== 'object') return String(detail);
    return Object.keys(detail).map(function (k) {
      var v = detail[k];
      return k + ': ' + (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));
    }).join('; ');
  }

  // ---------------------------------------------------------------- API
  function ApiError(status, data) {
    this.status = status;
    this.data = data && typeof data === 'object' ? data : {};
    this.code = status === 0 ? 'network' : (str(this.data.error) || 'http');
    this.detail = typeof this.data.detail === 'string' ? this.data.detail : '';
  }
  function loginUrl() {
    var here = window.location.pathname + window.location.search;
    return '/login?next=' + encodeURIComponent(here);
  }
  // fetch a path of this console; resolves with the parsed JSON (null for 204), rejects with ApiError.
  // A 401 sends the browser to the sign-in page (unless opts.noRedirect).
  function api(method, path, opts) {
    opts = opts || {};
    var headers = { 'Accept': 'application/json' };
    var init = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (UNSAFE[method]) {
      var csrf = cookie(CSRF_COOKIE);
      if (csrf) headers['X-CSRF-Token'] = csrf;
    }
    if (opts.form) init.body = opts.form;
    else if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.json);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
        if (res.status === 401 && !opts.noRedirect) {
          window.location.assign(loginUrl());
          return new Promise(function () { /* the page is leaving */ });
        }
        if (!res.ok) throw new ApiError(res.status, data);
        return data;
      });
    }, function () { throw new ApiError(0, null); });
  }
  // The user-facing text of a failed call: the code's message (zh/en) with its details, else the server's.
  function errorText(err) {
    if (!(err instanceof ApiError)) return t('err_network');
    if (err.code === 'network') return t('err_network');
    var d = err.data || {};
    var m = d.match && typeof d.match === 'object' ? d.match : {};
    var vars = {
      detail: err.detail, status: err.status, retry_after: d.retry_after != null ? d.retry_after : '?',
      name: str(m.name) || '?', branch: str(m.branch_name) || str(m.branch_code) || t('unknownBranch'),
      score: typeof m.score === 'number' ? m.score.toFixed(2) : '?', plate: str(m.plate) || '?'
    };
    if (err.code === 'invalid' && Array.isArray(d.problems) && d.problems.length) {
      vars.detail = d.problems.map(function (p) {
        return (p && p.field ? p.field + ': ' : '') + (p && p.message ? p.message : '');
      }).join('; ');
    }
    var key = 'err_' + err.code;
    // a refusal without its match (e.g. a row of an import report) says what it can without '?'
    if ((err.code === 'duplicate' || err.code === 'plate_taken') && !str(m.name)) key += '_nomatch';
    if (has(key)) return t(key, vars);
    if (err.detail) return err.detail;
    return t('err_http', vars);
  }
  // The message of a refusal code (e.g. from /api/photos/check's {ok: false, error, detail}).
  function codeText(code, detail, extra) {
    var e = new ApiError(422, Object.assign({ error: code, detail: detail || '' }, extra || {}));
    return errorText(e);
  }

  // ---------------------------------------------------------------- top bar
  var me = null;
  function renderTopbar(active, signedIn) {
    var bar = document.getElementById('topbar');
    if (!bar) return;
    bar.textContent = '';
    var brand = el('a', 'brand');
    brand.href = '/persons';
    brand.setAttribute('data-i18n', 'brand');
    bar.appendChild(brand);
    if (signedIn) {
      var nav = el('nav', 'nav');
      for (var i = 0; i < NAV.length; i++) {
        var a = el('a');
        a.href = NAV[i][0];
        a.hidden = true;  // shown once the signed-in user's role is known
        if (NAV[i][2]) a.setAttribute('data-roles', NAV[i][2].join(' '));
        a.setAttribute('data-i18n', NAV[i][1]);
        if (NAV[i][0] === active) a.setAttribute('aria-current', 'page');
        nav.appendChild(a);
      }
      bar.appendChild(nav);
    }
    bar.appendChild(el('span', 'spacer'));
    if (signedIn) {
      var who = el('span', 'who');
      who.id = 'me';
      bar.appendChild(who);
      var out = el('button', 'btn small');
      out.type = 'button';
      out.id = 'logout';
      out.setAttribute('data-i18n', 'logout');
      out.addEventListener('click', function () {
        api('POST', '/api/auth/logout', { noRedirect: true }).then(null, function () { return null; })
          .then(function () { window.location.assign('/login'); });
      });
      bar.appendChild(out);
    }
    var lb = el('button', 'btn small');
    lb.type = 'button';
    lb.id = 'lang';
    lb.setAttribute('data-i18n', 'langButton');
    lb.setAttribute('data-i18n-title', 'langTitle');
    lb.addEventListener('click', function () { setLang(lang === 'en' ? 'zh' : 'en'); });
    bar.appendChild(lb);
  }
  // May the signed-in user do ``what`` (a key of ROLES_OF)?
  function can(what) { return !!me && (ROLES_OF[what] || []).indexOf(me.role) >= 0; }
  function renderMe() {
    var node = document.getElementById('me');
    if (!node || !me) return;
    var links = document.querySelectorAll('#topbar .nav a');
    for (var i = 0; i < links.length; i++) {
      var roles = links[i].getAttribute('data-roles');
      links[i].hidden = !!roles && roles.split(' ').indexOf(me.role) < 0;
    }
    var role = has('user_' + me.role) ? t('user_' + me.role) : me.role;
    node.textContent = (str(me.display_name) || str(me.username)) + ' · ' + role;
  }
  onLang(renderMe);

  // A page starts here: top bar, strings, and (unless public) the signed-in user; resolves with Me.
  function start(active, opts) {
    opts = opts || {};
    renderTopbar(active, !opts.public);
    applyI18n();
    if (opts.public) return Promise.resolve(null);
    return api('GET', '/api/me').then(function (data) {
      me = data;
      renderMe();
      return data;
    }, function (err) {
      // without the user the page cannot work: say why, and go no further
      notice(errorText(err), 'error');
      return new Promise(function () { /* never settles */ });
    });
  }

  // A banner message in #notice (kind: error | ok | info); empty text hides it.
  function notice(text, kind, node) {
    var n = node || document.getElementById('notice');
    if (!n) return;
    n.textContent = text || '';
    n.className = 'notice ' + (kind || 'info');
    n.hidden = !text;
  }

  window.SB = {
    t: t, has: has, lang: function () { return lang; }, setLang: setLang, onLang: onLang, applyI18n: applyI18n,
    el: el, $: $, str: str, fmtTime: fmtTime, today: today, num: num, cookie: cookie, scopeText: scopeText,
    roleText: roleText, actionText: actionText, detailText: detailText, api: api, ApiError: ApiError, errorText: errorText, codeText: codeText, start: start,
    notice: notice, me: function () { return me; }, can: can
  };
})();

// A small DOM, enough to run a self-contained page's inline script under node against a real server:
// the page's own <body> markup is parsed into elements; selectors are tag, #id, .class and [attr], joined
// by descendant spaces. Network (WebSocket, fetch) is node's own. Nothing here knows the page's logic.
'use strict';

function TextNode(text) {
  this.nodeType = 3;
  this.parentNode = null;
  this._text = String(text);
}
Object.defineProperty(TextNode.prototype, 'textContent', {
  get: function () { return this._text; },
  set: function (v) { this._text = String(v); }
});

function ClassList(el) { this._el = el; }
ClassList.prototype._list = function () { return this._el.className.split(/\s+/).filter(Boolean); };
ClassList.prototype.contains = function (c) { return this._list().indexOf(c) >= 0; };
ClassList.prototype.add = function () {
  var list = this._list();
  for (var i = 0; i < arguments.length; i++) if (list.indexOf(arguments[i]) < 0) list.push(arguments[i]);
  this._el.className = list.join(' ');
};
ClassList.prototype.remove = function () {
  var drop = Array.prototype.slice.call(arguments);
  this._el.className = this._list().filter(function (c) { return drop.indexOf(c) < 0; }).join(' ');
};
ClassList.prototype.toggle = function (c, force) {
  var on = force === undefined ? !this.contains(c) : !!force;
  if (on) this.add(c); else this.remove(c);
  return on;
};

function Element(tag) {
  this.nodeType = 1;
  this.tagName = String(tag).toUpperCase();
  this.parentNode = null;
  this.childNodes = [];
  this.attributes = {};
  this.className = '';
  this.classList = new ClassList(this);
  this.listeners = {};
  this.style = {};
  this.hidden = false;
}
Object.defineProperty(Element.prototype, 'children', {
  get: function () { return this.childNodes.filter(function (n) { return n.nodeType === 1; }); }
});
Object.defineProperty(Element.prototype, 'firstChild', {
  get: function () { return this.childNodes[0] || null; }
});
Object.defineProperty(Element.prototype, 'id', {
  get: function () { return this.getAttribute('id') || ''; }
});
Object.defineProperty(Element.prototype, 'offsetWidth', { get: function () { return 0; } });
Object.defineProperty(Element.prototype, 'textContent', {
  get: function () { return this.childNodes.map(function (n) { return n.textContent; }).join(''); },
  set: function (v) {
    this.childNodes.forEach(function (n) { n.parentNode = null; });
    this.childNodes = v === '' || v == null ? [] : [new TextNode(v)];
    var self = this;
    this.childNodes.forEach(function (n) { n.parentNode = self; });
  }
});
Element.prototype.setAttribute = function (k, v) {
  if (k === 'class') { this.className = String(v); return; }
  if (k === 'hidden') { this.hidden = true; return; }
  this.attributes[k] = String(v);
};
Element.prototype.getAttribute = function (k) {
  if (k === 'class') return this.className;
  return Object.prototype.hasOwnProperty.call(this.attributes, k) ? this.attributes[k] : null;
};
Element.prototype.hasAttribute = function (k) { return this.getAttribute(k) !== null; };
Element.prototype.removeChild = function (child) {
  var i = this.childNodes.indexOf(child);
  if (i < 0) throw new Error('not a child');
  this.childNodes.splice(i, 1);
  child.parentNode = null;
  return child;
};
Element.prototype.insertBefore = function (child, ref) {
  if (child.parentNode) child.parentNode.removeChild(child);
  var i = ref ? this.childNodes.indexOf(ref) : -1;
  if (i < 0) this.childNodes.push(child); else this.childNodes.splice(i, 0, child);
  child.parentNode = this;
  return child;
};
Element.prototype.appendChild = function (child) { return this.insertBefore(child, null); };
Element.prototype.addEventListener = function (type, fn) {
  (this.listeners[type] = this.listeners[type] || []).push(fn);
};
Element.prototype.removeEventListener = function () {};
Element.prototype.dispatch = function (type) {
  (this.listeners[type] || []).forEach(function (fn) { fn({ type: type }); });
};
Element.prototype.descendants = function () {
  var out = [];
  (function walk(node) {
    node.children.forEach(function (c) { out.push(c); walk(c); });
  })(this);
  return out;
};
Element.prototype.querySelectorAll = function (selector) {
  var parts = selector.trim().split(/\s+/).map(parseCompound);
  var root = this;
  return this.descendants().filter(function (el) { return matchChain(el, parts, parts.length - 1, root); });
};
Element.prototype.querySelector = function (selector) { return this.querySelectorAll(selector)[0] || null; };

function parseCompound(text) {
  var m = /^([a-zA-Z][\w-]*)?/.exec(text);
  var c = { tag: m[1] ? m[1].toUpperCase() : null, id: null, classes: [], attrs: [] };
  var re = /#([\w-]+)|\.([\w-]+)|\[([\w-]+)\]/g;
  var r;
  re.lastIndex = m[0].length;
  while ((r = re.exec(text))) {
    if (r[1]) c.id = r[1];
    else if (r[2]) c.classes.push(r[2]);
    else c.attrs.push(r[3]);
  }
  return c;
}
function matches(el, c) {
  if (c.tag && el.tagName !== c.tag) return false;
  if (c.id && el.id !== c.id) return false;
  for (var i = 0; i < c.classes.length; i++) if (!el.classList.contains(c.classes[i])) return false;
  for (var j = 0; j < c.attrs.length; j++) if (!el.hasAttribute(c.attrs[j])) return false;
  return true;
}
function matchChain(el, parts, i, root) {
  if (!matches(el, parts[i])) return false;
  if (i === 0) return true;
  for (var a = el.parentNode; a && a !== root; a = a.parentNode) {
    if (matchChain(a, parts, i - 1, root)) return true;
  }
  return false;
}

var VOID = { br: 1, img: 1, input: 1, meta: 1, link: 1, hr: 1 };
function decode(text) {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
}
// Parses the page's own markup (no scripts, no comments) into children of `parent`.
function parseInto(parent, html) {
  var stack = [parent];
  var re = /<\/([a-zA-Z0-9]+)\s*>|<([a-zA-Z0-9]+)((?:\s+[\w:-]+(?:="[^"]*")?)*)\s*\/?>|([^<]+)/g;
  var m;
  while ((m = re.exec(html))) {
    var top = stack[stack.length - 1];
    if (m[1]) { stack.pop(); continue; }
    if (m[4] !== undefined) { if (m[4].trim()) top.appendChild(new TextNode(decode(m[4]))); continue; }
    var el = new Element(m[2]);
    var ar = /([\w:-]+)(?:="([^"]*)")?/g;
    var a;
    while ((a = ar.exec(m[3]))) el.setAttribute(a[1], a[2] === undefined ? '' : decode(a[2]));
    top.appendChild(el);
    if (!VOID[m[2].toLowerCase()]) stack.push(el);
  }
}

// Sets up window, document, navigator and localStorage for a page at `url` with `bodyHtml` as its body.
function install(url, bodyHtml) {
  var u = new URL(url);
  var store = {};
  var documentElement = new Element('html');
  var body = new Element('body');
  documentElement.appendChild(body);
  parseInto(body, bodyHtml);
  var doc = {
    documentElement: documentElement,
    body: body,
    title: '',
    visibilityState: 'visible',
    listeners: {},
    createElement: function (tag) { return new Element(tag); },
    createElementNS: function (ns, tag) { return new Element(tag); },
    querySelector: function (s) { return documentElement.querySelector(s); },
    querySelectorAll: function (s) { return documentElement.querySelectorAll(s); },
    addEventListener: function (type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  };
  var win = {
    location: { protocol: u.protocol, host: u.host, pathname: u.pathname, search: u.search, hash: u.hash },
    history: { state: null, replaceState: function () {} },
    localStorage: {
      getItem: function (k) { return Object.prototype.hasOwnProperty.call(store, k) ? store[k] : null; },
      setItem: function (k, v) { store[k] = String(v); }
    },
    scrollY: 0,
    scrollTo: function () {},
    addEventListener: function () {},
    fetch: globalThis.fetch
  };
  globalThis.window = win;
  globalThis.document = doc;
  Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  return { window: win, document: doc };
}

module.exports = { install: install, Element: Element };

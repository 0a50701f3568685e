// The config editor (#/config, admins): the whole TOML in a plain text area with line
// numbers, Ctrl-S to save, the errors of the checks marked at their line. A save names the
// version it replaces, so a hand edit made meanwhile is never overwritten.

import { h, notice } from './dom.js';

export async function editor(view) {
  const r = await fetch('/api/config', { cache: 'no-store' });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
  let etag = r.headers.get('etag');
  const text = h('textarea', { id: 'config-text', spellcheck: 'false', wrap: 'off' });
  text.value = await r.text();
  const gutter = h('pre', { class: 'gutter', id: 'config-lines' });
  const errors = h('ul', { class: 'err', id: 'config-errors' });
  const status = h('p', { id: 'config-status' });
  let marked = new Set();
  const numbers = () => {
    const n = text.value.split('\n').length;
    gutter.replaceChildren(...Array.from({ length: n }, (_, i) => h('span', { class: marked.has(i + 1) ? 'bad' : '' }, `${i + 1}\n`)));
    gutter.scrollTop = text.scrollTop;
  };
  const show = list => {
    marked = new Set(list.map(e => e.line));
    errors.replaceChildren(...list.map(e => h('li', { 'data-line': e.line, onclick: () => goTo(e.line) }, `line ${e.line}, column ${e.col}: ${e.key ? e.key + ': ' : ''}${e.message}`)));
    numbers();
  };
  const goTo = line => {
    const at = text.value.split('\n').slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
    text.focus();
    text.setSelectionRange(at, at);
  };
  const check = async () => {
    const v = await (await fetch('/api/config/validate', { method: 'POST', body: text.value })).json();
    show(v.errors || []);
    status.textContent = v.errors && v.errors.length ? `${v.errors.length} error(s): nothing saved` : 'No errors';
    return !(v.errors && v.errors.length);
  };
  const save = async () => {
    // Checked first, so a text with errors is never sent to be saved.
    if (!await check()) return;
    const r = await fetch('/api/config', { method: 'PUT', headers: { 'if-match': etag, 'content-type': 'application/toml' }, body: text.value });
    const v = await r.json().catch(() => ({}));
    if (r.status === 412) { status.textContent = 'The config changed on the box since you opened it: reload the page to edit the new one.'; status.className = 'err'; return; }
    if (r.status === 400 && v.errors) { show(v.errors); status.textContent = `${v.errors.length} error(s): nothing saved`; return; }
    if (!r.ok) { status.textContent = v.error || r.statusText; return; }
    etag = v.etag;
    show([]);
    status.className = '';
    status.textContent = (v.applied ? 'Saved and applied.' : 'Saved; the daemon has not applied it yet.')
      + (v.restart_needed.length ? ` Takes effect at the next start: ${v.restart_needed.join(', ')}.` : '');
    notice('Config saved');
  };
  text.addEventListener('input', numbers);
  text.addEventListener('scroll', () => { gutter.scrollTop = text.scrollTop; });
  text.addEventListener('keydown', ev => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === 's') { ev.preventDefault(); save(); }
  });
  view.replaceChildren(h('h1', {}, 'Config file'),
    h('p', {}, 'Every key is in the reference shipped with the box. Ctrl-S saves; a file with errors is never saved.'),
    h('div', { class: 'editor' }, gutter, text),
    h('div', { class: 'buttons' }, h('button', { onclick: check }, 'Check'), h('button', { id: 'config-save', onclick: save }, 'Save')),
    status, errors);
  numbers();
}

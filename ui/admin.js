// The admin page: users (add, set password, delete), API tokens (create, shown once; revoke)
// and the audit log of the last week.

import { api } from './api.js';
import { h, notice } from './dom.js';
import { me } from './session.js';

const send = (method, path, body) => api(path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
const when = s => new Date(s).toLocaleString();

export async function admin(view) {
  const [users, tokens, audit] = await Promise.all([
    api('/api/users'), api('/api/tokens'),
    api('/api/audit?start=' + Math.floor(Date.now() / 1000 - 7 * 86400)),
  ]);
  const redraw = () => admin(view).catch(e => notice(e.message));
  const act = f => async ev => { ev.preventDefault(); try { await f(new FormData(ev.target)); redraw(); } catch (e) { notice(e.message); } };
  const role = () => h('select', { name: 'role' }, h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'admin' }, 'admin'));
  view.replaceChildren(
    h('h1', {}, 'Users'),
    h('table', { id: 'users' }, h('tbody', {}, users.map(u => h('tr', { 'data-user': u.username },
      h('td', {}, u.username), h('td', {}, u.role), h('td', {}, when(u.created)),
      h('td', { class: 'actions' },
        u.username === me.username ? null : h('button', { onclick: async () => {
          const pw = prompt(`New password for ${u.username}`);
          if (pw) { try { await send('PUT', `/api/users/${encodeURIComponent(u.username)}/password`, { password: pw }); notice('Password set'); } catch (e) { notice(e.message); } }
        } }, 'Set password'),
        h('button', { class: 'del', onclick: async () => {
          if (!confirm(`Delete the user ${u.username}?`)) return;
          try { await send('DELETE', `/api/users/${encodeURIComponent(u.username)}`); redraw(); } catch (e) { notice(e.message); }
        } }, 'Delete')))))),
    h('form', { id: 'add-user', class: 'inline', onsubmit: act(f => send('POST', '/api/users', Object.fromEntries(f))) },
      h('input', { name: 'username', placeholder: 'user name', required: true }),
      h('input', { name: 'password', type: 'password', placeholder: 'password', autocomplete: 'new-password', required: true }),
      role(), h('button', {}, 'Add user')),
    h('h1', {}, 'API tokens'),
    h('p', {}, 'For scripts and Prometheus: send Authorization: Bearer TOKEN.'),
    h('table', { id: 'tokens' }, h('tbody', {}, tokens.map(t => h('tr', {},
      h('td', {}, t.name), h('td', {}, t.role), h('td', {}, t.id), h('td', {}, when(t.created)),
      h('td', {}, h('button', { class: 'del', onclick: async () => {
        try { await send('DELETE', `/api/tokens/${t.id}`); redraw(); } catch (e) { notice(e.message); }
      } }, 'Revoke')))))),
    h('form', { id: 'add-token', class: 'inline', onsubmit: async ev => {
      ev.preventDefault();
      try {
        const t = await send('POST', '/api/tokens', Object.fromEntries(new FormData(ev.target)));
        await redraw();
        view.prepend(h('p', { class: 'token', id: 'new-token' }, `The token "${t.name}": `, h('code', {}, t.token), ' (shown this once: copy it now)'));
      } catch (e) { notice(e.message); }
    } }, h('input', { name: 'name', placeholder: 'token name', required: true }), role(), h('button', {}, 'Create token')),
    h('h1', {}, 'Audit log (last 7 days)'),
    h('table', { id: 'audit' }, h('tbody', {}, audit.slice(-500).reverse().map(e => h('tr', {},
      h('td', {}, when(e.time)), h('td', {}, e.user), h('td', {}, e.address), h('td', {}, e.action), h('td', {}, e.target))))));
}

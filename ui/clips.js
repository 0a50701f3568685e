// The day's clip list: start, length, size, lock state; play, lock/unlock, download, delete.

import { api } from './api.js';
import { dur, h, hms, mb, notice } from './dom.js';
import { isAdmin } from './session.js';

// `play(ms)` starts the player there; `reroute()` redraws the view once the day has no clips.
export function clips(id, recs, play, reroute) {
  const rows = h('tbody');
  const drawRows = () => rows.replaceChildren(...recs.map(r => h('tr', { 'data-id': r.id },
    h('td', {}, hms(new Date(r.startMs)), r.retention_locked ? h('span', { class: 'locked' }, 'locked') : null),
    h('td', {}, dur(r.duration_seconds)),
    h('td', {}, mb(r.file_size_bytes)),
    h('td', { class: 'actions' },
      h('button', { class: 'play', onclick: () => play(r.startMs).catch(e => notice(String(e.message || e))) }, 'Play'),
      isAdmin() && h('button', { class: 'lock', 'aria-pressed': String(r.retention_locked), onclick: () => lock(r) }, r.retention_locked ? 'Unlock' : 'Lock'),
      h('a', { class: 'download', href: `/api/recordings/${r.id}/stream`, download: `${id}_${r.file_path.split('/').pop()}` }, 'Download'),
      isAdmin() && h('button', { class: 'del', disabled: r.retention_locked, title: r.retention_locked ? 'locked: unlock it first' : 'delete this clip', onclick: () => del(r) }, 'Delete')))));
  async function lock(r) {
    try {
      const u = await api(`/api/recordings/${r.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ retention_locked: !r.retention_locked }) });
      r.retention_locked = u.retention_locked;
      drawRows();
      notice(u.retention_locked ? 'Locked: it will not be deleted' : 'Unlocked');
    } catch (e) { notice('Could not change the lock: ' + e.message); }
  }
  async function del(r) {
    if (r.retention_locked) { notice('This clip is locked: unlock it first'); return; }
    if (!confirm(`Delete the clip from ${hms(new Date(r.startMs))}? This cannot be undone.`)) return;
    try {
      await api(`/api/recordings/${r.id}`, { method: 'DELETE' });
      recs.splice(recs.indexOf(r), 1);
      drawRows();
      notice('Deleted');
      if (!recs.length) reroute();
    } catch (e) { notice('Could not delete: ' + e.message); }
  }
  drawRows();
  return h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Start'), h('th', {}, 'Length'), h('th', {}, 'Size'), h('th', {}, ''))), rows);
}

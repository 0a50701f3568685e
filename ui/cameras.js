// The Cameras page (#/cameras, admins): every camera of the config with its state, a form to
// add or change one ("Test" asks the box what the URL sends before saving), enable or disable,
// and remove. Every change is a config edit: the daemon applies it at once.

import { api } from './api.js';
import { enc, h, notice } from './dom.js';
import { badge } from './grid.js';

const send = (method, path, body) => api(path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });

export async function cameras(view) {
  const streams = await api('/api/streams');
  const redraw = () => cameras(view).catch(e => notice(e.message));
  const form = cameraForm(null, redraw);
  view.replaceChildren(
    h('h1', {}, 'Cameras'),
    streams.length ? null : h('p', { class: 'empty' }, 'No cameras yet. Add the first one below: its RTSP URL is in the camera\'s manual or app (often rtsp://USER:PASSWORD@ADDRESS:554/…).'),
    h('table', { id: 'cameras' }, h('tbody', {}, streams.map(s => h('tr', { 'data-stream': s.id },
      h('td', {}, h('b', {}, s.name || s.id), h('br'), h('small', {}, s.id)),
      h('td', { class: 'url' }, s.url || ''),
      h('td', {}, badge(s)),
      h('td', {}, `${s.retention_days} days`),
      h('td', { class: 'actions' },
        h('button', { class: 'edit', onclick: () => form.replaceWith(cameraForm(s, redraw)) }, 'Edit'),
        h('button', { class: 'toggle', onclick: () => change(s.id, { enabled: !s.enabled }, redraw) }, s.enabled ? 'Disable' : 'Enable'),
        h('button', { class: 'del', onclick: async () => {
          if (!confirm(`Remove the camera ${s.name || s.id}? Its recordings stay until they age out.`)) return;
          try { await send('DELETE', `/api/streams/${enc(s.id)}`); notice('Removed'); redraw(); } catch (e) { notice(e.message); }
        } }, 'Remove')))))),
    form);
}

async function change(id, fields, redraw) {
  try { await send('PATCH', `/api/streams/${enc(id)}`, fields); notice('Saved'); redraw(); } catch (e) { notice(e.message); }
}

// The add form (`s` null) or the edit form of stream `s`.
function cameraForm(s, redraw) {
  const field = (name, label, attrs) => h('label', {}, label, h('input', { name, ...attrs }));
  const result = h('p', { class: 'probe', id: 'probe-result' });
  const errors = h('ul', { class: 'err', id: 'camera-errors' });
  const f = h('form', { class: 'camera', id: 'camera-form', onsubmit: async ev => {
    ev.preventDefault();
    const v = Object.fromEntries(new FormData(f));
    const body = { name: v.name || null, enabled: f.elements.enabled.checked,
      retention_days: v.retention_days === '' ? null : Number(v.retention_days),
      segment_seconds: v.segment_seconds === '' ? null : Number(v.segment_seconds) };
    // A masked password is left as it is in the file.
    if (!s || v.url !== s.url) body.url = v.url;
    errors.replaceChildren();
    try {
      if (s) await send('PATCH', `/api/streams/${enc(s.id)}`, body);
      else await send('POST', '/api/streams', { id: v.id, ...body });
      notice(s ? 'Saved' : 'Added: it records within a few seconds');
      redraw();
    } catch (e) { errors.replaceChildren(h('li', {}, e.message)); }
  } },
    h('h2', {}, s ? `Change ${s.name || s.id}` : 'Add a camera'),
    s ? null : field('id', 'Id (a-z, 0-9, - and _; names its folder)', { required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,63}' }),
    field('name', 'Name', { value: s ? s.name : '' }),
    field('url', 'RTSP URL', { required: true, value: s ? s.url : '', placeholder: 'rtsp://user:password@192.168.1.20:554/stream1' }),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'enabled', checked: s ? s.enabled : true }), 'Record it'),
    field('retention_days', 'Keep for days (empty: the default)', { type: 'number', min: 0, value: s ? s.retention_days : '' }),
    field('segment_seconds', 'Segment seconds (empty: the default)', { type: 'number', min: 1, value: s ? s.segment_seconds : '' }),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'test', onclick: async () => {
        result.textContent = 'Asking the camera…';
        try {
          const r = await send('POST', '/api/sources/probe', { url: f.elements.url.value });
          result.textContent = r.ok
            ? `It sends ${r.video_codec} ${r.width}×${r.height}${r.fps ? ` at ${r.fps} fps` : ''}, ${r.audio_codec ? `audio ${r.audio_codec}` : 'no audio'}.`
            : `It cannot be read: ${r.error}`;
          result.className = r.ok ? 'probe ok' : 'probe err';
        } catch (e) { result.textContent = e.message; }
      } }, 'Test'),
      h('button', { type: 'submit' }, s ? 'Save' : 'Add')),
    result, errors);
  return f;
}

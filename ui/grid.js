// The grid of cameras (#/): state badges, errors, and live video for the first few.

import { api } from './api.js';
import { enc, h } from './dom.js';
import { isAdmin } from './session.js';

export function badge(s) {
  const st = s.recorder.state;
  return h('span', { class: `badge ${st}`, 'data-state': st }, st);
}

export function liveVideo(id, controls) {
  const v = h('video', { src: `/api/streams/${enc(id)}/live.mp4`, autoplay: true, muted: true, playsinline: true, controls });
  v.muted = true;
  // A live view that fails (the stream stopped) says so instead of showing a black box.
  v.addEventListener('error', () => v.replaceWith(h('div', { class: 'still' }, 'live view ended')));
  return v;
}

const GRID_LIVE = 4; // a browser opens at most 6 connections to one host

// The newest keyframe of a camera beyond the live tiles, renewed with the grid.
function snapshot(id) {
  const src = `/api/streams/${enc(id)}/snapshot.jpg?width=480`;
  const img = h('img', { class: 'still', src, 'data-src': src, alt: 'latest picture' });
  img.addEventListener('error', () => img.replaceWith(h('div', { class: 'still' }, 'open to watch live')));
  return img;
}

// Draws the grid into `view`; `every` registers a refresh that ends with the view.
export async function grid(view, every) {
  const streams = await api('/api/streams');
  if (!streams.length) {
    view.replaceChildren(h('p', { class: 'empty', id: 'no-cameras' }, 'No cameras yet. ',
      isAdmin() ? h('a', { href: '#/cameras' }, 'Add the first one') : 'An admin adds them on the Cameras page.'));
    return;
  }
  let live = 0;
  // A hidden page keeps no live connection open: pictures instead, live again when shown.
  const hidden = document.hidden;
  document.onvisibilitychange = () => { if (location.hash === '' || location.hash === '#/') window.dispatchEvent(new HashChangeEvent('hashchange')); };
  view.replaceChildren(h('section', { class: 'grid' }, streams.map(s => {
    const recording = s.recorder.state === 'recording';
    const top = recording && !hidden && live++ < GRID_LIVE ? liveVideo(s.id, false)
      : recording ? snapshot(s.id)
      : h('div', { class: 'still' }, s.enabled ? 'not recording' : 'disabled');
    return h('a', { class: 'card', href: `#/stream/${enc(s.id)}`, 'data-stream': s.id }, top,
      h('div', { class: 'meta' }, h('b', {}, s.name || s.id), badge(s),
        s.recorder.state === 'backoff' && s.recorder.last_error ? h('span', { class: 'err' }, s.recorder.last_error) : null));
  })));
  every(15000, async () => {
    for (const img of view.querySelectorAll('img.still')) img.src = img.dataset.src + '&t=' + Date.now();
    try {
      for (const s of await api('/api/streams')) {
        const card = view.querySelector(`[data-stream="${CSS.escape(s.id)}"] .badge`);
        if (card) card.replaceWith(badge(s));
      }
    } catch (e) { /* the header says when the recorder does not answer */ }
  });
}

// The grid of cameras (#/): state badges, errors, and live video for the first few.

import { api } from './api.js';
import { enc, h } from './dom.js';

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

// Draws the grid into `view`; `every` registers a refresh that ends with the view.
export async function grid(view, every) {
  const streams = await api('/api/streams');
  if (!streams.length) { view.replaceChildren(h('p', { class: 'empty' }, 'No streams yet: add one to the config file.')); return; }
  let live = 0;
  view.replaceChildren(h('section', { class: 'grid' }, streams.map(s => {
    const recording = s.recorder.state === 'recording';
    const top = recording && live++ < GRID_LIVE ? liveVideo(s.id, false)
      : h('div', { class: 'still' }, recording ? 'open to watch live' : s.enabled ? 'not recording' : 'disabled');
    return h('a', { class: 'card', href: `#/stream/${enc(s.id)}`, 'data-stream': s.id }, top,
      h('div', { class: 'meta' }, h('b', {}, s.name || s.id), badge(s),
        s.recorder.state === 'backoff' && s.recorder.last_error ? h('span', { class: 'err' }, s.recorder.last_error) : null));
  })));
  every(15000, async () => {
    try {
      for (const s of await api('/api/streams')) {
        const card = view.querySelector(`[data-stream="${CSS.escape(s.id)}"] .badge`);
        if (card) card.replaceWith(badge(s));
      }
    } catch (e) { /* the header says when the recorder does not answer */ }
  });
}

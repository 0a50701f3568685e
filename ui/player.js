// The day's 24-hour timeline, the player on playback.mp4 that follows it across segments, and
// the export of a time range.

import { api } from './api.js';
import { clips } from './clips.js';
import { enc, h, hms, iso, notice, pad } from './dom.js';

export function player(root, id, recs, [dayStart, dayEnd], reroute) {
  const len = dayEnd - dayStart;
  const pos = ms => `${((Math.min(Math.max(ms, dayStart), dayEnd) - dayStart) / len * 100).toFixed(4)}%`;
  const cursor = h('div', { class: 'cursor' });
  const bar = h('div', { class: 'timeline', title: 'click to play from that moment', 'data-day-start': dayStart, 'data-day-end': dayEnd });
  for (const r of recs) {
    const left = pos(r.startMs), right = pos(r.endMs);
    bar.append(h('div', { class: 'span', style: `left:${left};width:calc(${right} - ${left})` }));
  }
  for (let hr = 0; hr < 24; hr += 3) {
    const t = new Date(new Date(dayStart).getFullYear(), new Date(dayStart).getMonth(), new Date(dayStart).getDate(), hr).getTime();
    bar.append(h('span', { class: `tick${hr ? '' : ' first'}${hr % 6 ? ' minor' : ''}`, style: `left:${pos(t)}` }, `${pad(hr)}:00`));
  }
  bar.append(cursor);
  const clock = h('span', { class: 'now', id: 'clock' }, 'click the bar to play');
  const video = h('video', { controls: true, playsinline: true, preload: 'metadata', id: 'player' });
  video.muted = true;
  let plan = null;

  const wallOf = t => {
    if (!plan) return null;
    for (const s of plan.spans) {
      if (t < s.media + (s.end - s.start) / 1000 + 0.001) return s.start + Math.max(0, t - s.media) * 1000;
    }
    const last = plan.spans[plan.spans.length - 1];
    return last ? last.end : null;
  };
  const mediaOf = ms => {
    for (const s of plan.spans) {
      if (ms < s.end) return s.media + Math.max(0, ms - s.start) / 1000;
    }
    return 0;
  };
  video.addEventListener('timeupdate', () => {
    const w = wallOf(video.currentTime);
    if (w == null) return;
    video.dataset.wallMs = String(Math.round(w));
    cursor.style.display = 'block';
    cursor.style.left = pos(w);
    clock.textContent = new Date(w).toLocaleTimeString();
  });

  async function playFrom(ms) {
    const next = recs.find(r => r.endMs > ms);
    if (!next) { notice('No footage after ' + hms(new Date(ms))); return; }
    const from = Math.max(ms, next.startMs);
    // A closed range, so the file stays the same while it plays and seeks.
    const q = `start=${iso(from)}&end=${iso(Math.min(dayEnd, Date.now()))}`;
    const p = await api(`/api/streams/${enc(id)}/playback.json?${q}`);
    plan = { spans: p.spans.map(s => ({ media: s.media_start_seconds, start: Date.parse(s.start_time), end: Date.parse(s.end_time) })) };
    video.src = `/api/streams/${enc(id)}/playback.mp4?${q}`;
    video.dataset.src = video.src;
    await new Promise((ok, bad) => {
      video.addEventListener('loadedmetadata', ok, { once: true });
      video.addEventListener('error', bad, { once: true });
    });
    video.currentTime = mediaOf(from);
    try { await video.play(); } catch (e) { /* the user can press play */ }
  }
  bar.addEventListener('click', ev => {
    const r = bar.getBoundingClientRect();
    playFrom(dayStart + (ev.clientX - r.left) / r.width * len).catch(e => notice(String(e.message || e)));
  });

  const fromIn = h('input', { type: 'time', step: 1, value: hms(new Date(Math.max(recs[0].startMs, dayStart))), 'aria-label': 'export from' });
  const toIn = h('input', { type: 'time', step: 1, value: hms(new Date(Math.min(recs[recs.length - 1].endMs, dayEnd - 1000))), 'aria-label': 'export to' });
  const atDay = v => { const [hh, mm, ss] = v.split(':').map(Number); const d = new Date(dayStart); return new Date(d.getFullYear(), d.getMonth(), d.getDate(), hh, mm, ss || 0).getTime(); };
  const exportLink = h('a', { id: 'export', download: '', hidden: true });
  const exportBtn = h('button', {
    onclick: () => {
      const a = atDay(fromIn.value), b = atDay(toIn.value);
      if (!(a < b)) { notice('Export: "from" must be before "to"'); return; }
      if (!recs.some(r => r.endMs > a && r.startMs < b)) { notice('No footage in that range'); return; }
      exportLink.href = `/api/streams/${enc(id)}/playback.mp4?start=${iso(a)}&end=${iso(b)}&download=1`;
      exportLink.click();
    },
  }, 'Export clip');

  root.append(bar, h('div', { class: 'player' }, video), clock,
    h('div', { class: 'export' }, 'Export from', fromIn, 'to', toIn, exportBtn, exportLink),
    clips(id, recs, playFrom, reroute));
}

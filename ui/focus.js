// One camera (#/stream/ID, #/stream/ID/recordings/YYYY-MM-DD): the Live tab, and the
// Recordings tab with the calendar, the day's timeline and player, and the clip list.

import { api } from './api.js';
import { calendar } from './calendar.js';
import { TZ, dayOf, enc, h, iso, nextDay, ymd } from './dom.js';
import { badge, liveVideo } from './grid.js';
import { player } from './player.js';

export async function focus(view, id, tab, day, reroute) {
  const streams = await api('/api/streams');
  const s = streams.find(x => x.id === id);
  const name = s ? (s.name || s.id) : id;
  const base = `#/stream/${enc(id)}`;
  view.replaceChildren(
    h('div', { class: 'focus-head' }, h('a', { href: '#/' }, '← all'), h('h1', {}, name), s ? badge(s) : null,
      s && s.recorder.state === 'backoff' ? h('span', { class: 'err' }, s.recorder.last_error || '') : null),
    h('nav', { class: 'tabs' },
      h('a', { href: base, class: tab === 'live' ? 'on' : '' }, 'Live'),
      h('a', { href: `${base}/recordings`, class: tab === 'recordings' ? 'on' : '' }, 'Recordings')),
    h('section', { id: 'tab' }));
  const box = document.getElementById('tab');
  if (tab === 'live') {
    box.append(s && s.recorder.state === 'recording'
      ? h('div', { class: 'live' }, liveVideo(id, true))
      : h('p', { class: 'empty' }, s && s.enabled ? 'Not recording right now, so there is no live view.' : 'This stream is disabled.'));
    return;
  }
  await recordings(box, id, day, reroute);
}

async function recordings(box, id, dayStr, reroute) {
  const dates = await api(`/api/streams/${enc(id)}/recordings/dates?tz=${enc(TZ)}`);
  if (!dayStr) dayStr = dates.length ? dates[dates.length - 1] : ymd(new Date());
  const day = dayOf(dayStr);
  const cal = calendar(new Set(dates), dayStr, d => { location.hash = `#/stream/${enc(id)}/recordings/${d}`; });

  const dayMs = [day.getTime(), nextDay(day).getTime()];
  const recs = (await api(`/api/streams/${enc(id)}/recordings?start=${iso(dayMs[0])}&end=${iso(dayMs[1])}`))
    .map(r => ({ ...r, startMs: Date.parse(r.start_time), endMs: Date.parse(r.end_time) }));
  const right = h('div', { class: 'panel' });
  box.append(h('div', { class: 'rec-layout' }, cal, right));
  const title = day.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
  right.append(h('h2', { style: 'margin:0;font-size:1.1rem' }, title));
  if (!recs.length) { right.append(h('p', { class: 'empty' }, 'No footage on this day.')); return; }
  player(right, id, recs, dayMs, reroute);
}

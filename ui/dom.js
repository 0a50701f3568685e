// Building elements, the notice toast, and formatting of times and sizes.

export const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
export const enc = encodeURIComponent;

export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (v === true) e.setAttribute(k, '');
    else if (v !== false && v != null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k != null && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}

let noticeTimer;
export function notice(text) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.style.display = 'block';
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.style.display = 'none'; }, 4000);
}

export const pad = n => String(n).padStart(2, '0');
export const ymd = d => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
export const hms = d => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
export const dayOf = s => { const [y, m, d] = s.split('-').map(Number); return new Date(y, m - 1, d); };
export const nextDay = d => new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1);
export const iso = ms => new Date(ms).toISOString();
export const mb = n => (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + ' MB';
export const dur = s => { s = Math.round(s); return s >= 3600 ? `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}` : `${Math.floor(s / 60)}:${pad(s % 60)}`; };

// The header's disk line and the "Needs attention" banner, from /api/health.

import { api } from './api.js';
import { h } from './dom.js';

export async function refreshHealth() {
  try {
    const hl = await api('/api/health');
    const d = hl.disk;
    document.getElementById('disk').textContent = d
      ? `Disk: ${d.free_percent.toFixed(1)}% free (${(d.free_bytes / 1e9).toFixed(1)} of ${(d.total_bytes / 1e9).toFixed(1)} GB) · ${hl.index.recordings} recordings`
      : 'Disk: unknown';
    const p = document.getElementById('problems');
    p.hidden = hl.problems.length === 0;
    p.replaceChildren(h('b', {}, 'Needs attention:'), h('ul', {}, hl.problems.map(x => h('li', {}, x))));
  } catch (e) {
    document.getElementById('disk').textContent = 'The recorder does not answer';
  }
}

// A Monday-first month calendar with the days that have footage marked; month arrows.

import { dayOf, h, ymd } from './dom.js';

// `has`: the days with footage (YYYY-MM-DD); `selected`: the day shown; `open(day)` on a click.
export function calendar(has, selected, open) {
  const cal = h('div', { class: 'panel' });
  const day = dayOf(selected);
  let month = new Date(day.getFullYear(), day.getMonth(), 1);
  const draw = () => {
    const first = (month.getDay() + 6) % 7; // weeks start on Monday
    const days = new Date(month.getFullYear(), month.getMonth() + 1, 0).getDate();
    const label = month.toLocaleDateString(undefined, { month: 'long', year: 'numeric' });
    cal.replaceChildren(
      h('div', { class: 'cal-head' },
        h('button', { 'aria-label': 'previous month', onclick: () => { month = new Date(month.getFullYear(), month.getMonth() - 1, 1); draw(); } }, '‹'),
        h('b', { class: 'month' }, label),
        h('button', { 'aria-label': 'next month', onclick: () => { month = new Date(month.getFullYear(), month.getMonth() + 1, 1); draw(); } }, '›')),
      h('div', { class: 'cal' },
        ['Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa', 'Su'].map(d => h('span', { class: 'dow' }, d)),
        Array.from({ length: first }, () => h('span')),
        Array.from({ length: days }, (_, i) => {
          const d = ymd(new Date(month.getFullYear(), month.getMonth(), i + 1));
          return h('button', {
            class: (has.has(d) ? 'has' : '') + (d === selected ? ' sel' : ''), 'data-day': d,
            title: has.has(d) ? 'has footage' : 'no footage',
            onclick: () => open(d),
          }, i + 1);
        })));
  };
  draw();
  return cal;
}

/** The doctor's report as text for a terminal. `--json` prints the DoctorReport itself. */
import type { Severity } from './checks.js';
import type { DoctorReport } from './doctor.js';

const MARK: Record<Severity, string> = { ok: '  ok  ', info: ' info ', warn: ' WARN ', fail: ' FAIL ' };

const ms = (v: number | undefined): string => (v === undefined ? '—' : v < 10_000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(1)} s`);

/** Formats a report as readable lines: each finding with its evidence and advice, then the timings and a verdict. */
export function formatReport(report: DoctorReport): string {
  const lines = [`ssehub doctor ${report.url}`, ''];
  for (const f of report.findings) {
    lines.push(`[${MARK[f.severity]}] ${f.title}`);
    if (f.detail !== undefined && f.severity !== 'ok') lines.push(`         ${f.detail}`);
    if (f.advice !== undefined && (f.severity === 'warn' || f.severity === 'fail' || f.severity === 'info')) lines.push(`         → ${f.advice}`);
  }
  const t = report.timings;
  lines.push('', `timings: headers ${ms(t.headers)}, first byte ${ms(t.firstByte)}, first event ${ms(t.firstEvent)}${t.ended !== undefined && report.status !== undefined ? `, stream ended at ${ms(t.ended)}` : ''}`);
  const { fail, warn } = report.summary;
  lines.push(report.ok ? 'verdict: nothing wrong found' : `verdict: ${fail} problem${fail === 1 ? '' : 's'}, ${warn} warning${warn === 1 ? '' : 's'}`, '');
  return lines.join('\n');
}

import { MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { errorMessage, IDeployment, requestAPI } from './api';
import { el } from './dom';
import { components } from './schema';

type IDeploymentMetrics = components['schemas']['DeploymentMetrics'];
type IFigures = IDeploymentMetrics['figures'];

/** How often the open view reads `GET deployments/{id}/metrics` (the server reads the
 * endpoint at most once a second however many views read it). */
const POLL_MS = 2000;
const WINDOW_MINUTES = 5;
/** `%sfmonitor`'s widgets: how often the kernels hear which of them are still shown. */
const REPORT_MS = 2000;
const MONITOR_CLASS = 'jp-SparkserveMonitor';
const MONITOR_ID_PREFIX = 'jp-SparkserveMonitor-id-';

const number = (value: number | null, digits = 1, unit = ''): string =>
  value === null ? '-' : `${value.toFixed(digits)}${unit}`;

/** The figures the server computed (monitor.Figures), as label and text. */
function shown(figures: IFigures): [string, string, string][] {
  const rate =
    figures.error_rate === null ? '-' : `${(figures.error_rate * 100).toFixed(2)}%`;
  return [
    ['rps', 'req/s', number(figures.requests_per_second)],
    ['p50', 'p50', number(figures.p50_ms, 2, ' ms')],
    ['p99', 'p99', number(figures.p99_ms, 2, ' ms')],
    ['errors', 'errors', `${rate} (${figures.errors} of ${figures.requests})`],
    ['rows', 'rows per predict call', number(figures.mean_batch_rows)],
    ['window', 'window', `${figures.window_seconds.toFixed(0)} s`]
  ];
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(label: string, width: number, height: number): SVGSVGElement {
  const made = document.createElementNS(SVG, 'svg');
  made.setAttribute('width', String(width));
  made.setAttribute('height', String(height));
  made.setAttribute('role', 'img');
  made.setAttribute('aria-label', label);
  return made;
}

/** req/s between successive reads, as a line. */
function sparkline(history: number[]): SVGSVGElement {
  const [width, height] = [240, 40];
  const chart = svg('requests per second over the window', width, height);
  if (history.length >= 2) {
    const top = Math.max(...history) || 1;
    const step = width / (history.length - 1);
    const line = document.createElementNS(SVG, 'polyline');
    const points = history.map((v, i) => `${i * step},${height - (v / top) * (height - 2)}`);
    line.setAttribute('points', points.join(' '));
    line.setAttribute('class', 'jp-SparkserveMonitor-line');
    chart.append(line);
  }
  return chart;
}

/** Predict calls by rows scored, as bars (the sizes with no call left out). */
function bars(figures: IFigures): SVGSVGElement {
  const [width, height] = [240, 40];
  const chart = svg('predict calls by rows scored', width, height);
  const used = figures.batch_rows.filter(bar => bar.count > 0);
  const top = Math.max(1, ...used.map(bar => bar.count));
  const step = width / Math.max(used.length, 1);
  used.forEach((bar, i) => {
    const rect = document.createElementNS(SVG, 'rect');
    const tall = (bar.count / top) * height;
    rect.setAttribute('x', String(i * step));
    rect.setAttribute('y', String(height - tall));
    rect.setAttribute('width', String(step * 0.8));
    rect.setAttribute('height', String(tall));
    rect.setAttribute('class', 'jp-SparkserveMonitor-bar');
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${bar.label} rows: ${bar.count} calls`;
    rect.append(title);
    chart.append(rect);
  });
  return chart;
}

/** The monitor's content: the figures, read again every POLL_MS while it is shown. */
class MonitorContent extends Widget {
  constructor(private readonly _deployment: IDeployment) {
    super({ node: el('div', { className: 'jp-SparkserveMonitorView' }) });
    this.node.dataset.testid = 'sparkserve-monitor';
    this._figures = el('dl', { className: 'jp-SparkserveMonitorView-figures' });
    this._charts = el('div', { className: 'jp-SparkserveMonitorView-charts' });
    this._status = el('p', {
      className: 'jp-SparkserveMonitorView-status',
      testId: 'sparkserve-monitor-status',
      attrs: { role: 'status' },
      text: 'Reading the endpoint’s metrics…'
    });
    this.node.append(
      el('h2', { text: `${_deployment.ref} at ${_deployment.url}` }),
      this._figures,
      this._charts,
      this._status
    );
    this._timer = window.setInterval(() => void this._read(), POLL_MS);
    void this._read();
  }

  dispose(): void {
    window.clearInterval(this._timer); // closed: no more reads
    super.dispose();
  }

  private async _read(): Promise<void> {
    if (this.isDisposed || !this.isVisible || this._reading) {
      return; // a hidden tab reads nothing; the next tick after it is shown does
    }
    this._reading = true;
    const id = encodeURIComponent(this._deployment.id);
    try {
      const answer = await requestAPI<IDeploymentMetrics>(
        `deployments/${id}/metrics?window=${WINDOW_MINUTES}`
      );
      this._render(answer.figures);
      this._status.textContent = `Updated every ${POLL_MS / 1000} s, over the last ${WINDOW_MINUTES} minutes.`;
    } catch (error) {
      this._status.textContent = errorMessage(error);
    } finally {
      this._reading = false;
    }
  }

  private _render(figures: IFigures): void {
    this._figures.replaceChildren(
      ...shown(figures).flatMap(([key, label, text]) => [
        el('dt', { text: label }),
        el('dd', { text, testId: `sparkserve-monitor-${key}` })
      ])
    );
    this._charts.replaceChildren(
      el('p', { text: 'req/s' }),
      sparkline(figures.history),
      el('p', { text: 'rows per predict call' }),
      bars(figures)
    );
  }

  private _figures: HTMLElement;
  private _charts: HTMLElement;
  private _status: HTMLElement;
  private _timer: number;
  private _reading = false;
}

/** The deployment's monitor in the main area (the one already open is brought forward). */
export function openMonitor(
  deployment: IDeployment,
  addToMain: (widget: Widget) => void,
  activate: (id: string) => void
): void {
  const id = `jp-sparkserve-monitor-${deployment.id}`;
  if (!document.getElementById(id)) {
    const widget = new MainAreaWidget({ content: new MonitorContent(deployment) });
    widget.id = id;
    widget.title.label = `Monitor ${deployment.ref}`;
    widget.title.caption = `${deployment.ref} (${deployment.id}) at ${deployment.url}`;
    widget.title.closable = true;
    addToMain(widget);
  }
  activate(id);
}

/**
 * Tell each notebook's kernel which of its `%sfmonitor` widgets are still rendered (a
 * `sparkserve.monitor` comm opened with `{alive: [ids]}`), so that a monitor whose output
 * was cleared or whose notebook closed stops polling (magics/monitor_widget.py). Nothing is
 * sent for a notebook showing none.
 */
export function reportShownMonitors(notebooks: INotebookTracker | null): void {
  if (notebooks === null) {
    return;
  }
  window.setInterval(() => {
    notebooks.forEach(panel => {
      const ids = Array.from(panel.content.node.querySelectorAll(`.${MONITOR_CLASS}`))
        .flatMap(node => Array.from(node.classList))
        .filter(name => name.startsWith(MONITOR_ID_PREFIX))
        .map(name => name.slice(MONITOR_ID_PREFIX.length));
      const kernel = panel.sessionContext.session?.kernel;
      if (ids.length === 0 || !kernel) {
        return;
      }
      try {
        kernel.createComm('sparkserve.monitor').open({ alive: ids });
      } catch {
        // a kernel restarting or gone: the next report reaches the new one
      }
    });
  }, REPORT_MS);
}

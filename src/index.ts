import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';

import { cellsRendererFactory } from './cellsRenderer';
import { SparkservePanel } from './panel';

const sparkserveIconSvg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2 3 7v10l9 5 9-5V7l-9-5zm0 2.3 6.7 3.7L12 11.7 5.3 8 12 4.3zM5 9.7l6 3.3v6.6l-6-3.3V9.7zm8 9.9V13l6-3.3v6.6l-6 3.3z"/>
  </g>
</svg>`;

export const sparkserveIcon = new LabIcon({
  name: 'jupyter_sparkserve:icon',
  svgstr: sparkserveIconSvg
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter_sparkserve:plugin',
  description: 'The sparkserve sidebar: the model repository and its serving actions.',
  autoStart: true,
  requires: [ILabShell],
  optional: [INotebookTracker],
  activate: (app: JupyterFrontEnd, labShell: ILabShell, notebooks: INotebookTracker | null) => {
    const panel = new SparkservePanel({
      notebooks,
      contents: app.serviceManager.contents,
      activate: id => labShell.activateById(id)
    });
    panel.title.icon = sparkserveIcon;
    labShell.add(panel, 'left', { rank: 900 });
  }
};

/**
 * The renderer of the magics' cells bundle: shows its summary and inserts its cells below the
 * cell that produced it, once per bundle (see cellsRenderer.ts).
 */
const cellsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter_sparkserve:cells-renderer',
  description: 'Inserts the snippet cells that %sfdeploy emits below the cell that ran it.',
  autoStart: true,
  requires: [IRenderMimeRegistry, INotebookTracker],
  activate: (
    _app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    notebooks: INotebookTracker
  ) => {
    rendermime.addFactory(cellsRendererFactory(notebooks));
  }
};

export default [plugin, cellsPlugin];

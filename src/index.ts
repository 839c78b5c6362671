import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
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

/** The sidebar's commands, in the command palette under "Model serving". */
export const COMMANDS = {
  open: 'sparkserve-panel:open',
  refresh: 'sparkserve-panel:refresh',
  deploy: 'sparkserve-panel:deploy',
  score: 'sparkserve-panel:score',
  openJobs: 'sparkserve-panel:open-jobs'
};
const PALETTE_CATEGORY = 'Model serving';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter_sparkserve:plugin',
  description: 'The sparkserve sidebar: the model repository and its serving actions.',
  autoStart: true,
  requires: [ILabShell],
  optional: [INotebookTracker, ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell,
    notebooks: INotebookTracker | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new SparkservePanel({
      notebooks,
      contents: app.serviceManager.contents,
      commands: app.commands,
      activate: id => labShell.activateById(id),
      addToMain: widget => labShell.add(widget, 'main')
    });
    panel.title.icon = sparkserveIcon;
    labShell.add(panel, 'left', { rank: 900 });
    // Open again after a reload when it was open (the workspace remembers it).
    restorer?.add(panel, 'sparkserve-sidebar');

    const show = () => labShell.activateById(panel.id);
    app.commands.addCommand(COMMANDS.open, {
      label: 'Show the Model Serving Sidebar',
      caption: 'Open the sparkserve sidebar',
      execute: show
    });
    app.commands.addCommand(COMMANDS.refresh, {
      label: 'Refresh Models, Deployments and Jobs',
      caption: 'Read the repository, the deployments and the jobs again',
      execute: () => {
        show();
        return panel.refresh();
      }
    });
    app.commands.addCommand(COMMANDS.deploy, {
      label: 'Deploy a Model Version…',
      caption: 'Choose a model version and deploy it',
      execute: () => panel.runOnChosenVersion('deploy')
    });
    app.commands.addCommand(COMMANDS.score, {
      label: 'Score Files with a Model Version…',
      caption: 'Choose a model version and score files with it as a job',
      execute: () => panel.runOnChosenVersion('score')
    });
    app.commands.addCommand(COMMANDS.openJobs, {
      label: 'Open Model Serving Jobs',
      caption: 'Show the jobs in the sparkserve sidebar',
      execute: () => {
        show();
        panel.revealJobs();
      }
    });
    for (const command of Object.values(COMMANDS)) {
      palette?.addItem({ command, category: PALETTE_CATEGORY });
    }
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

import { CommandRegistry } from '@lumino/commands';
import { ReadonlyJSONObject } from '@lumino/coreutils';
import { Menu } from '@lumino/widgets';

import { IActionTarget } from './modelList';

/** Menu labels of the actions the API may list; an unknown one shows under its own name. */
export const ACTION_LABELS: Readonly<Record<string, string>> = {
  register: 'Register',
  reregister: 'Re-register',
  deploy: 'Deploy…',
  undeploy: 'Undeploy',
  score: 'Score…',
  build_image: 'Build image…',
  kubernetes: 'Kubernetes manifest…',
  snippets: 'Show snippets',
  delete: 'Delete…'
};

export type ActionHandler = (action: string, target: IActionTarget) => void;

/** The command id of an action: its `data-command` in the menu's DOM. */
export function actionCommand(action: string): string {
  return `sparkserve:${action}`;
}

/**
 * The per-version Actions menu: one item per action in the version's `actions` list from the
 * API, in that order, and nothing else. No lifecycle rule is decided here.
 */
export class ActionsMenu {
  constructor(handler: ActionHandler) {
    this._handler = handler;
  }

  /** Open the menu of `target` under `anchor`. */
  open(target: IActionTarget, anchor: HTMLElement): void {
    this._menu?.close();
    const menu = new Menu({ commands: this._commands });
    menu.addClass('jp-SparkserveActionsMenu');
    menu.node.dataset.testid = 'sparkserve-actions-menu';
    menu.node.dataset.ref = target.ref;
    menu.node.setAttribute('aria-label', `Actions for ${target.ref}`);
    const args: ReadonlyJSONObject = { ...target };
    for (const action of target.actions) {
      menu.addItem({ command: this._ensureCommand(action), args });
    }
    if (target.actions.length === 0) {
      menu.addItem({ command: this._ensureCommand('none'), args });
    }
    menu.aboutToClose.connect(() => {
      if (this._menu === menu) {
        this._menu = null;
      }
      // after the triggered command has started
      window.requestAnimationFrame(() => menu.dispose());
    });
    this._menu = menu;
    const box = anchor.getBoundingClientRect();
    menu.open(box.left, box.bottom);
  }

  dispose(): void {
    this._menu?.close();
  }

  private _ensureCommand(action: string): string {
    const id = actionCommand(action);
    if (!this._commands.hasCommand(id)) {
      const known = action in ACTION_LABELS;
      this._commands.addCommand(id, {
        label: action === 'none' ? 'No action available' : (ACTION_LABELS[action] ?? action),
        caption: known ? undefined : 'This sidebar does not know this action: upgrade it.',
        isEnabled: () => known,
        dataset: { action },
        execute: args => this._handler(action, args as unknown as IActionTarget)
      });
    }
    return id;
  }

  private _commands = new CommandRegistry();
  private _handler: ActionHandler;
  private _menu: Menu | null = null;
}

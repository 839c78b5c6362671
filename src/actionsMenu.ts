import { CommandRegistry } from '@lumino/commands';
import { ReadonlyJSONObject, ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { h, VirtualElement } from '@lumino/virtualdom';
import { Menu } from '@lumino/widgets';

import { ITargetStatus } from './api';
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

/** The id of a greyed item's reason, which is its accessible description. */
function reasonId(item: Menu.IItem): string {
  return `jp-SparkserveActionsMenu-reason-${item.command.replace(/[^\w-]/g, '-')}`;
}

/** Lumino's menu items, with their caption as a tooltip: a greyed item says why, to the
 * mouse as a tooltip, and to the keyboard and screen readers as its description
 * (`aria-describedby`), shown under its label while it has the focus (see `stepFocus`). A
 * separator is a `separator` and not focusable (Lumino's `presentation` item breaks the
 * menu's ARIA structure: a menu may hold only items, groups and separators). */
class CaptionedItems extends Menu.Renderer {
  renderItem(data: Menu.IRenderData): VirtualElement {
    const item = super.renderItem(data);
    if (data.item.type === 'separator') {
      const { className, dataset } = item.attrs;
      return h.li({ className, dataset, role: 'separator' }, ...item.children);
    }
    const caption = data.item.caption;
    if (!caption) {
      return item;
    }
    const described = data.item.isEnabled ? {} : { 'aria-describedby': reasonId(data.item) };
    return h.li({ ...item.attrs, title: caption, ...described }, ...item.children);
  }

  renderLabel(data: Menu.IRenderData): VirtualElement {
    if (data.item.isEnabled || !data.item.caption) {
      return super.renderLabel(data);
    }
    // aria-hidden: the reason is the item's description, not a part of its name.
    const reason = h.span(
      {
        className: 'jp-SparkserveActionsMenu-reason',
        id: reasonId(data.item),
        'aria-hidden': 'true'
      },
      data.item.caption
    );
    return h.div({ className: 'lm-Menu-itemLabel' }, this.formatLabel(data), reason);
  }
}

/**
 * Move the focus to the next (`step` 1) or previous (-1) item, greyed ones included. Lumino's
 * own arrow keys skip a disabled item, so a keyboard or screen-reader user would never reach
 * its reason. A greyed item takes the focus as it is, still `aria-disabled` (announced dimmed,
 * its reason as its description and shown under its label), and Enter on it does nothing, as
 * the ARIA menu pattern has it; an enabled one becomes Lumino's active item as before.
 */
function stepFocus(menu: Menu, step: 1 | -1): void {
  const nodes = Array.from(menu.contentNode.children) as HTMLElement[];
  const stops = menu.items.flatMap((item, index) =>
    item.type !== 'separator' && item.isVisible ? [index] : []
  );
  if (stops.length === 0) {
    return;
  }
  const focused = nodes.findIndex(node => node === document.activeElement);
  const from = stops.indexOf(focused >= 0 ? focused : menu.activeIndex);
  const next =
    from < 0
      ? stops[step > 0 ? 0 : stops.length - 1]
      : stops[(from + step + stops.length) % stops.length];
  if (menu.items[next].isEnabled) {
    menu.activeIndex = next;
  } else {
    menu.activeIndex = -1;
    nodes[next]?.focus();
  }
}

/** Where `action` goes in the menu: the order of ACTION_LABELS, unknown ones last. */
function rank(order: string[], action: string): number {
  const at = order.indexOf(action);
  return at < 0 ? order.length : at;
}

/** Whether a command's arguments name a version (run from the menu, not bare from elsewhere). */
function isTarget(args: ReadonlyPartialJSONObject): boolean {
  return typeof args.ref === 'string';
}

export type ActionHandler = (action: string, target: IActionTarget, deployTo?: string) => void;

/** The command id of an action: its `data-command` in the menu's DOM. */
export function actionCommand(action: string): string {
  return `sparkserve:${action}`;
}

/**
 * The per-version Actions menu: one item per action in the version's `actions` list from the
 * API, in that order, and nothing else. No lifecycle rule is decided here.
 */
export class ActionsMenu {
  /** `commands` is JupyterLab's registry: the menu's items are commands there like any
   * other menu's (`sparkserve:ACTION`), enabled only for a version the menu was opened on. */
  constructor(handler: ActionHandler, commands: CommandRegistry) {
    this._handler = handler;
    this._commands = commands;
  }

  /**
   * Open the menu of `target` under `anchor`. Where the version offers Deploy, the targets
   * that have a menu label get their own item after it, greyed with the reason when the
   * target is not usable here (`status` says both; a Lumino menu cannot grow once open, so
   * it opens when `targets` is known, at once after the sidebar's first `status`).
   */
  async open(
    target: IActionTarget,
    anchor: HTMLElement,
    targets: Promise<ITargetStatus[]> = Promise.resolve([])
  ): Promise<void> {
    this._menu?.close();
    const offersDeploy = target.actions.includes('deploy');
    const found =
      offersDeploy || (target.unavailable ?? []).some(item => item.action === 'deploy')
        ? await targets
        : [];
    const menu = new Menu({ commands: this._commands, renderer: new CaptionedItems() });
    menu.addClass('jp-SparkserveActionsMenu');
    menu.node.dataset.testid = 'sparkserve-actions-menu';
    menu.node.dataset.ref = target.ref;
    menu.node.setAttribute('aria-label', `Actions for ${target.ref}`);
    const args: ReadonlyJSONObject = { ...target };
    // What the core does not offer now is shown greyed with its reason, not hidden.
    this._unavailable = new Map(
      (target.unavailable ?? []).map(found => [found.action, found.reason] as const)
    );
    const shown = [...target.actions, ...this._unavailable.keys()];
    const order = Object.keys(ACTION_LABELS);
    shown.sort((a, b) => rank(order, a) - rank(order, b));
    for (const action of shown) {
      if (action === 'delete' && menu.items.length > 0) {
        menu.addItem({ type: 'separator' }); // set apart from the rest: it cannot be undone
      }
      menu.addItem({ command: this._ensureCommand(action), args });
      if (action === 'deploy') {
        for (const status of found.filter(candidate => candidate.menu_label)) {
          menu.addItem({ command: this._ensureDeployTo(status), args });
        }
      }
    }
    if (shown.length === 0) {
      menu.addItem({ command: this._ensureCommand('none'), args });
    }
    // Escape (or a choice that opens nothing) gives the focus back to the Actions button;
    // the arrow keys stop at greyed items too.
    let escaped = false;
    menu.node.addEventListener(
      'keydown',
      event => {
        escaped = escaped || event.key === 'Escape';
        if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
          event.preventDefault();
          event.stopImmediatePropagation(); // Lumino's own listener is on this node too
          stepFocus(menu, event.key === 'ArrowDown' ? 1 : -1);
        }
      },
      true
    );
    menu.aboutToClose.connect(() => {
      if (this._menu === menu) {
        this._menu = null;
      }
      // after the triggered command has started
      window.requestAnimationFrame(() => {
        menu.dispose();
        const lost = document.activeElement === null || document.activeElement === document.body;
        if ((escaped || lost) && anchor.isConnected) {
          anchor.focus();
        }
      });
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
        caption: () =>
          action === 'none'
            ? 'This version offers no action now.'
            : known
              ? (this._unavailable.get(action) ?? '')
              : 'This sidebar does not know this action: upgrade it.',
        isEnabled: args => isTarget(args) && known && !this._unavailable.has(action),
        dataset: { action },
        execute: args => this._handler(action, args as unknown as IActionTarget)
      });
    }
    return id;
  }

  private _ensureDeployTo(status: ITargetStatus): string {
    const id = `${actionCommand('deploy')}-to-${status.target}`;
    this._deployTo.set(id, status); // the command reads the latest status

    if (!this._commands.hasCommand(id)) {
      this._commands.addCommand(id, {
        label: () => this._deployTo.get(id)?.menu_label ?? status.menu_label,
        // Greyed with Deploy's own reason when the version offers no deploy now, else with
        // the target's when it is not usable here.
        caption: () => {
          const now = this._deployTo.get(id);
          const notNow = this._unavailable.get('deploy');
          return notNow ?? (now && !now.usable ? now.detail : '');
        },
        isEnabled: args =>
          isTarget(args) &&
          !this._unavailable.has('deploy') &&
          (this._deployTo.get(id)?.usable ?? false),
        dataset: { action: 'deploy', target: status.target },
        execute: args =>
          this._handler('deploy', args as unknown as IActionTarget, status.target)
      });
    }
    return id;
  }

  private _deployTo = new Map<string, ITargetStatus>();
  /** The open menu's greyed actions and why (the core's `unavailable`). */
  private _unavailable = new Map<string, string>();
  private _commands: CommandRegistry;
  private _handler: ActionHandler;
  private _menu: Menu | null = null;
}

import { caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';

import { el } from './dom';

/** A section of the sidebar as JupyterLab's own panels show one: a small uppercase header
 * that collapses it, tools at the header's end, and its body. */
export interface ISection {
  node: HTMLElement;
  body: HTMLElement;
}

export function collapsibleSection(
  title: string,
  options: { className: string; tools?: HTMLElement[] },
  ...children: HTMLElement[]
): ISection {
  const body = el('div', { className: 'jp-SparkserveSection-body' }, ...children);
  const caret = el('span', { className: 'jp-SparkserveSection-caret' });
  const toggle = el(
    'button',
    {
      className: 'jp-SparkserveSection-toggle',
      attrs: { type: 'button', 'aria-expanded': 'true' }
    },
    caret,
    el('h3', { className: 'jp-SparkservePanel-sectionTitle', text: title })
  );
  const render = (expanded: boolean) => {
    toggle.setAttribute('aria-expanded', String(expanded));
    body.hidden = !expanded;
    const icon = expanded ? caretDownIcon : caretRightIcon;
    caret.replaceChildren(icon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' }));
  };
  toggle.addEventListener('click', () => render(body.hidden));
  render(true);
  const node = el(
    'section',
    { className: `jp-SparkserveSection ${options.className}` },
    el('div', { className: 'jp-SparkservePanel-sectionHeader' }, toggle, ...(options.tools ?? [])),
    body
  );
  return { node, body };
}

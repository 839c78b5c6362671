/** Small helpers to build the sidebar's DOM without a framework. */

import { Clipboard } from '@jupyterlab/apputils';
import { copyIcon } from '@jupyterlab/ui-components';

export interface IElementOptions {
  className?: string;
  text?: string;
  title?: string;
  testId?: string;
  attrs?: Record<string, string>;
  dataset?: Record<string, string>;
}

/** A new element with the given class, text, attributes and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: IElementOptions = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (options.className) {
    element.className = options.className;
  }
  if (options.text !== undefined) {
    element.textContent = options.text;
  }
  if (options.title) {
    element.title = options.title;
  }
  if (options.testId) {
    element.dataset.testid = options.testId;
  }
  for (const [key, value] of Object.entries(options.attrs ?? {})) {
    element.setAttribute(key, value);
  }
  Object.assign(element.dataset, options.dataset ?? {});
  element.append(...children);
  return element;
}

/** A JupyterLab-styled button that runs `onClick`. */
export function button(
  label: string,
  onClick: (event: MouseEvent) => void,
  options: IElementOptions = {}
): HTMLButtonElement {
  const element = el('button', {
    ...options,
    className: `jp-SparkserveButton ${options.className ?? ''}`.trim(),
    text: label
  });
  element.type = 'button';
  element.addEventListener('click', onClick);
  return element;
}

/** A badge such as "registered" or "deployed". */
export function badge(kind: string, text: string): HTMLElement {
  return el('span', {
    className: `jp-SparkserveBadge jp-SparkserveBadge-${kind}`,
    text,
    dataset: { badge: kind }
  });
}

/** A Copy button: puts `text` on the clipboard and says so for a moment. */
export function copyButton(text: string, testId: string): HTMLButtonElement {
  const copy = button(
    'Copy',
    () => {
      Clipboard.copyToSystem(text);
      copy.textContent = 'Copied';
      window.setTimeout(() => {
        copy.textContent = 'Copy';
        copy.prepend(copyIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' }));
      }, 1500);
    },
    { className: 'jp-SparkserveSnippet-copy', testId }
  );
  copy.prepend(copyIcon.element({ tag: 'span', className: 'jp-SparkserveButton-icon' }));
  return copy;
}

import { INotebookTracker } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';

import {
  api,
  ApiError,
  errorMessage,
  IDeployment,
  IEngineStatus,
  IJob,
  IKubernetesManifest,
  IRemedy,
  ISnippet,
  ITargetStatus
} from './api';
import {
  buildImageDialog,
  confirmDelete,
  deployDialog,
  kubernetesDialog,
  scoreDialog
} from './dialogs';
import { manifestDialog } from './manifestDialog';
import { IActionTarget } from './modelList';
import { insertIntoNotebook } from './notebookInsert';
import { snippetsDialog } from './snippetsDialog';

/** 'progress': an action going on (its next message replaces it); the others end it. */
export type MessageKind = 'progress' | 'info' | 'success' | 'error';

/** A button offered with a message: the remedy of an error, as the core named it. */
export interface IMessageAction {
  label: string;
  run: () => Promise<void>;
}

/** What the actions need from the sidebar around them. */
export interface IActionContext {
  /** The deployment targets and whether each is usable here (from `status`). */
  targets(): Promise<ITargetStatus[]>;
  /** The batch engines and whether each is usable here (from `status`). */
  engines(): Promise<IEngineStatus[]>;
  notebooks: INotebookTracker | null;
  /** The Jupyter contents, for saving a file; null where the sidebar has none. */
  contents: Contents.IManager | null;
  /** Bring a widget of the main area to the front. */
  activate(id: string): void;
  say(kind: MessageKind, text: string, action?: IMessageAction): void;
  /** The repository changed: read the model list again. */
  changed(): Promise<void>;
  jobStarted(job: IJob): void;
  /** A deploy was accepted: the sidebar follows its start and says how it ends. */
  deploymentStarted(deployment: IDeployment): void;
}

/** The deployments of `target` that are up, as the API lists them. */
async function liveDeployments(target: IActionTarget): Promise<IDeployment[]> {
  const { items } = await api.listDeployments();
  return items.filter(item => item.name === target.name && item.version === target.version);
}

async function register(target: IActionTarget, context: IActionContext, again: boolean) {
  context.say('progress', `${again ? 'Re-registering' : 'Registering'} ${target.ref} in MLflow…`);
  const call = again ? api.reregister : api.register;
  const { registration } = await call(target.name, target.version);
  context.say('success', `${target.ref} is registered as ${registration.model_uri}.`);
  await context.changed();
}

async function deploy(target: IActionTarget, context: IActionContext, deployTo?: string) {
  const choice = await deployDialog(target.ref, await context.targets(), deployTo);
  if (choice === null) {
    return;
  }
  const deployment = await api.deploy(target.ref, choice.target, choice.options);
  context.deploymentStarted(deployment); // its notification follows it to its end
  await context.changed();
}

async function undeploy(target: IActionTarget, context: IActionContext) {
  const live = await liveDeployments(target);
  if (live.length === 0) {
    context.say('error', `No deployment of ${target.ref} is up any more.`);
  }
  for (const deployment of live) {
    context.say('progress', `Undeploying ${target.ref} (${deployment.id})…`);
    await api.undeploy(deployment.id);
    context.say('success', `${target.ref} is undeployed (${deployment.id} stopped).`);
  }
  await context.changed();
}

async function score(target: IActionTarget, context: IActionContext) {
  const settings = await scoreDialog(target.ref, await context.engines(), context.contents);
  if (settings === null) {
    return;
  }
  const job = await api.submitJob(settings);
  context.say('success', `Scoring with ${target.ref}: job ${job.id} is ${job.status}.`);
  context.jobStarted(job);
}

async function buildImage(target: IActionTarget, context: IActionContext) {
  const made: { job?: IJob } = {}; // the build the dialog submitted once it was accepted
  const settings = await buildImageDialog(target.ref, async chosen => {
    made.job = await api.buildImage(target.name, target.version, chosen);
  });
  const job = made.job;
  if (settings === null || job === undefined) {
    return;
  }
  context.say('success', `${job.title}: job ${job.id} is ${job.status}.`);
  context.jobStarted(job);
}

async function kubernetes(target: IActionTarget, context: IActionContext) {
  const made: { manifest?: IKubernetesManifest } = {}; // what the dialog's settings gave
  const settings = await kubernetesDialog(target.ref, async chosen => {
    made.manifest = await api.kubernetesManifest(target.name, target.version, chosen);
  });
  const manifest = made.manifest;
  if (settings === null || manifest === undefined) {
    return;
  }
  // The dialog checks the path with the server and writes the file itself: a bad path is
  // said next to it, with the YAML and the path kept.
  const choice = await manifestDialog(manifest, context.contents);
  if (choice === null) {
    return;
  }
  if (choice.action === 'insert') {
    insertCells(manifest.snippets, context);
    return;
  }
  context.say('success', `Wrote the manifests of ${target.ref} to ${choice.path}.`);
}

async function snippets(target: IActionTarget, context: IActionContext) {
  // Which snippets a version has (a serving endpoint's, else the offline one) is the core's
  // answer: this only shows them.
  const found = await api.versionSnippets(target.name, target.version);
  const insert = await snippetsDialog(`Snippets for ${target.ref}`, found.snippets);
  if (insert) {
    insertCells(found.snippets, context);
  }
}

function insertCells(snippets: ISnippet[], context: IActionContext): void {
  const path = insertIntoNotebook(context.notebooks, snippets);
  const panel = context.notebooks?.currentWidget;
  if (panel) {
    context.activate(panel.id);
  }
  const count = snippets.length;
  context.say('success', `Inserted ${count} cell${count === 1 ? '' : 's'} into ${path}.`);
}

async function remove(target: IActionTarget, context: IActionContext) {
  if (!(await confirmDelete(target.ref))) {
    return;
  }
  await api.deleteVersion(target.name, target.version);
  context.say('success', `${target.ref} is deleted.`);
  await context.changed();
}

const HANDLERS: Record<
  string,
  (target: IActionTarget, context: IActionContext, deployTo?: string) => Promise<void>
> =
  {
    register: (target, context) => register(target, context, false),
    reregister: (target, context) => register(target, context, true),
    deploy,
    undeploy,
    score,
    build_image: buildImage,
    kubernetes,
    snippets,
    delete: remove
  };

/** Run one action of the Actions menu; failures become a readable message. */
export async function runAction(
  action: string,
  target: IActionTarget,
  context: IActionContext,
  deployTo?: string
): Promise<void> {
  const handler = HANDLERS[action];
  if (handler === undefined) {
    context.say('error', `This sidebar does not know the action "${action}": upgrade it.`);
    return;
  }
  try {
    await handler(target, context, deployTo);
  } catch (error) {
    const remedy = error instanceof ApiError ? remedyButton(error.remedy, context) : undefined;
    // A run the user cancelled is no failure: said plainly, not in error red.
    const kind = error instanceof ApiError && error.code === 'CANCELLED' ? 'info' : 'error';
    context.say(kind, `${target.ref}: ${errorMessage(error)}`, remedy);
    await context.changed().catch(() => undefined);
  }
}

/** `name:version` of a version reference the core names in a remedy. */
function splitRef(ref: string): [string, number] {
  const at = ref.lastIndexOf(':');
  return [ref.slice(0, at), Number(ref.slice(at + 1))];
}

/** The remedies this sidebar can carry out itself, as buttons; the others stay words. */
const REMEDY_BUTTONS: Record<string, (args: IRemedy['args']) => [string, () => Promise<unknown>]> =
  {
    register: args => {
      const [name, version] = splitRef(String(args.ref));
      return [`Register ${args.ref}`, () => api.register(name, version)];
    },
    reregister: args => {
      const [name, version] = splitRef(String(args.ref));
      return [`Re-register ${args.ref}`, () => api.reregister(name, version)];
    },
    undeploy: args => [
      `Undeploy ${args.deployment}`,
      () => api.undeploy(String(args.deployment))
    ],
    cancel_job: args => [`Cancel job ${args.job}`, () => api.cancelJob(String(args.job))]
  };

function remedyButton(
  remedy: IRemedy | undefined,
  context: IActionContext
): IMessageAction | undefined {
  const make = remedy === undefined ? undefined : REMEDY_BUTTONS[remedy.action];
  if (remedy === undefined || make === undefined) {
    return undefined;
  }
  const [label, call] = make(remedy.args);
  return {
    label,
    run: async () => {
      try {
        await call();
        context.say('success', `${label}: done.`);
      } catch (error) {
        context.say('error', errorMessage(error));
      }
      await context.changed();
    }
  };
}

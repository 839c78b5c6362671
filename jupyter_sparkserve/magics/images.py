"""The magics that package a model version as a container image and run it on Kubernetes.

    %sfbuild REF [--tag T] [--base-image IMG] [--push]
    %sfk8s REF [--image IMG] [--replicas N] [--namespace NS] [--token-secret NAME]
               [--autoscale MIN-MAX] [--disruption-budget] [--cells MODE]

`%sfbuild` runs the build as a job (the sidebar's jobs view shows it too) and follows it with
a progress bar; `%sfk8s` adds a cell that writes the manifests to a file and one that applies
them.
"""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..containers.build_job import BuildSpec
from ..containers.images import kubernetes_manifest
from ..containers.kubernetes import KubernetesOptions
from ..workflows import JobRunner
from .common import CELLS_MODES, RepositoryMagics, emit_snippets, follow_job, parse, usage_errors

# One combined cell (next-input) would put a title above %%writefile, which must come first.
MANIFEST_CELLS_MODES = tuple(mode for mode in CELLS_MODES if mode != "next-input")


@magics_class
class ImageMagics(RepositoryMagics):
    @magic_arguments()
    @argument("model", metavar="REF", help="The model version: NAME, NAME:VERSION, NAME@ALIAS.")
    @argument("--tag", help="The image's tag (default sparkserve/NAME:VERSION).")
    @argument("--base-image", help="The image to build on (default $SPARKSERVE_BASE_IMAGE).")
    @argument("--push", action="store_true", help="Push it to the registry its tag names.")
    @line_magic
    def sfbuild(self, line: str) -> None:
        """Build a container image serving (and batch scoring with) a model version, as a job:
        %sfbuild churn@champion --tag 127.0.0.1:5000/models/churn:3 --push."""
        args = parse(self.sfbuild, line)
        with usage_errors():
            spec = BuildSpec(args.model, tag=args.tag, base_image=args.base_image, push=args.push)
            runner = JobRunner(self.repository)
            job = runner.submit(spec)
            job = follow_job(self.shell, runner, job, f"Building {job.spec.output}")
        if job.status != "succeeded":
            tail = runner.log(job.id, tail=15)
            raise UsageError(f"Job {job.id} {job.status}: {job.error}\n{tail}".rstrip())
        print(f"Built {job.output_path} in {job.seconds or 0:.1f} s (job {job.id}).")

    @magic_arguments()
    @argument("model", metavar="REF", help="The model version: NAME, NAME:VERSION, NAME@ALIAS.")
    @argument("--image", help="The image the pods run (default: the tag %%sfbuild gives it).")
    @argument("--replicas", type=int, help="Pods to run (default 2).")
    @argument("--namespace", help="The namespace of every resource.")
    @argument("--token-secret", help="A Secret whose key `token` the endpoint will require.")
    @argument("--autoscale", metavar="MIN-MAX", help="A HorizontalPodAutoscaler, 70%% CPU.")
    @argument("--disruption-budget", action="store_true", help="Keep one pod up in drains.")
    @argument("--host-port", type=int, help="Publish on this node port (single-node clusters).")
    @argument(
        "--cells",
        choices=MANIFEST_CELLS_MODES,
        default="auto",
        help="How the cells arrive (not next-input: a %%%%writefile cell cannot be merged).",
    )
    @line_magic
    def sfk8s(self, line: str) -> None:
        """Kubernetes manifests serving a model version from its image, as a cell writing
        them to a file and one applying them: %sfk8s churn:3 --image REGISTRY/churn:3."""
        args = parse(self.sfk8s, line)
        settings = {
            "image": args.image,
            "replicas": args.replicas,
            "namespace": args.namespace,
            "token_secret": args.token_secret,
            "autoscale": args.autoscale,
            "disruption_budget": args.disruption_budget,
            "host_port": args.host_port,
        }
        with usage_errors():
            options = KubernetesOptions.from_settings(settings)
            manifest = kubernetes_manifest(self.repository, args.model, options)
        snippets = manifest.snippets()
        emit_snippets(self.shell, snippets, manifest.summary, key=manifest.ref, mode=args.cells)

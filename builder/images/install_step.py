"""The base image's install step: a shell script and the image settings of its commit.

The classic builder (no BuildKit) cannot mount a cache into a RUN step, and anything COPYed
into the build stays in a layer. So the step that installs the requirements and builder runs
in a container of its own, made from the image of the Dockerfile part (parent and apt
packages): the host's download cache is mounted into it, the files it needs are copied in
(and removed before the commit), and the container is committed with the settings below. The
result is what a `RUN --mount=type=cache` would give: one layer with the installed files,
and only the packages that changed are downloaded.

Everything here is rendered from the inputs only: the text is part of the base checksum.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from builder.images.dockerfile import BUILDER_HOME, env_quote
from builder.images.installers import Installer, InstallPaths
from builder.images.requirements import MAIN_FILE
from builder.project import install

PATHS = InstallPaths()
CACHE_OWNER_FILE = "cache-owner"  # "uid:gid" of the host user, handed in beside the files

# The mounted cache belongs to the host user who runs builder, not to the container's root:
# on exit (also after a failure) every entry is given back to that user.
_GIVE_BACK_CACHE = (
    "python3 -c 'import os, sys\n"
    "uid, gid = (int(x) for x in open(sys.argv[1]).read().split(\":\"))\n"
    "for top, dirs, files in os.walk(sys.argv[2]):\n"
    "    for name in dirs + files:\n"
    "        os.lchown(os.path.join(top, name), uid, gid)\n"
    "os.chown(sys.argv[2], uid, gid)' {owner} {cache}"
)
# The project's hook (README "Project formats") in the parent Python's site-packages.
_PROJECT_HOOK = (
    "python3 -c 'import os, shutil, sysconfig; site = sysconfig.get_paths()[\"purelib\"]; "
    "os.makedirs(site, exist_ok=True); shutil.copy(\"{hook}\", site); "
    "open(os.path.join(site, \"{pth}\"), \"w\").write(\"{pth_text}\\n\")'"
)
_CUSTOM_PTH = (
    "{home}/bin/python -c 'import site; "
    "open(site.getsitepackages()[0] + \"/builder-custom.pth\", \"w\").write(\"{home}/custom\\n\")'"
)


@dataclass(frozen=True)
class InstallSteps:
    """Two steps, each run in a container and committed, then the image settings.

    - runtime: builder's own environment. It depends only on the image below it, builder and
      the repository types, so one committed layer serves every base image built on the same
      parent (builder.images.build finds it by its key) and a change of requirements never
      reinstalls builder;
    - requirements: the project's requirements, with the download cache mounted;
    - update: instead of `requirements`, on the project's previous base when only the
      requirement lines changed (builder.images.increment); "" when the installer cannot.
    """

    runtime: str  # run by /bin/sh -c, as root, with the cache at PATHS.cache
    requirements: str  # the same
    changes: tuple[str, ...]  # Dockerfile instructions the last commit applies (LABEL aside)
    update: str = ""

    def text(self) -> str:
        """The steps as a reader (and the checksum) sees them."""
        return ("# install step 1, builder's environment: run in a container, committed\n"
                f"{self.runtime}"
                "# install step 2, the requirements: run in a container with the download "
                f"cache mounted at {PATHS.cache}, committed with these settings\n"
                f"{self.requirements}" + "".join(f"{change}\n" for change in self.changes))


def render_install(installer: Installer, *, has_requirements: bool,
                   builder_requirements: Sequence[str], custom_module: bool,
                   environment: Mapping[str, str], code_dir: str,
                   project_dir: str = "") -> InstallSteps:
    """`project_dir`: where the project's install lives (builder.project.install), "" for
    none; its hook goes into the parent's site-packages and its `bin` onto PATH."""
    runtime = [*_frame(installer),
               *installer.install_builder(BUILDER_HOME, builder_requirements, PATHS)]
    if custom_module:
        runtime += [f"mv {PATHS.staging}/custom {BUILDER_HOME}/custom",
                    _CUSTOM_PTH.format(home=BUILDER_HOME)]
    requirements = _frame(installer)
    listed = f"{PATHS.requirements_dir}/{MAIN_FILE}"
    lines = installer.update_requirements(listed, PATHS) if has_requirements else []
    update = "\n".join([*_frame(installer), *lines]) + "\n" if lines else ""
    if lines:
        # what the install adds is reported (builder.images.site_packages), for a later
        # update of this base; never a failure
        requirements.append(f"python3 -I {PATHS.helper} snapshot {PATHS.staging} || true")
    if has_requirements:
        requirements += installer.install_requirements(listed, PATHS)
    if project_dir:
        requirements.append(_PROJECT_HOOK.format(
            hook=f"{PATHS.staging}/project-hook/{install.HOOK_MODULE}.py",
            pth=f"{install.HOOK_MODULE}.pth", pth_text=install.hook_pth().strip()))
    requirements.append(f"mkdir -p {code_dir}")
    if lines:
        requirements.append(f"python3 -I {PATHS.helper} report {PATHS.staging} || true")
    changes = [f"ENV {key}={env_quote(value)}" for key, value in sorted(environment.items())]
    if project_dir:
        changes.append(f"ENV BUILDER_PROJECT_DIR={project_dir} PATH={project_dir}/bin:$PATH")
    changes += [f"ENV BUILDER_CODE_DIR={env_quote(code_dir)}",
                f"WORKDIR {code_dir}",
                "ENTRYPOINT " + json.dumps([f"{BUILDER_HOME}/bin/builder", "entrypoint", "--"]),
                "CMD []"]
    return InstallSteps("\n".join(runtime) + "\n", "\n".join(requirements) + "\n",
                        tuple(changes), update)


def _frame(installer: Installer) -> list[str]:
    """Stop at the first failure; on exit, remove what the host handed in (it never reaches
    the layer) and give the cache's files back to the host user. The installer's tools are
    run from the cache: a tool the cache lacks was handed in, and is kept there."""
    owner = f"{PATHS.staging}/{CACHE_OWNER_FILE}"
    lines = ["set -eu", "finish() {",
             f"  if [ -f {owner} ]; then "
             + _GIVE_BACK_CACHE.format(owner=owner, cache=PATHS.cache) + "; fi",
             f"  rm -rf {PATHS.staging}", "}", "trap finish EXIT"]
    for name in installer.tool_names():
        kept, handed = f"{PATHS.cached_tools}/{name}", f"{PATHS.tools}/{name}"
        lines.append(f"[ -x {kept} ] || {{ mkdir -p {PATHS.cached_tools} && cp {handed} "
                     f"{kept}.$$ && chmod 0755 {kept}.$$ && mv -f {kept}.$$ {kept}; }}")
    return lines

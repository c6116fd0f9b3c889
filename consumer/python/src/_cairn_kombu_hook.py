"""Run at interpreter start by ``cairn_kombu.pth``: makes ``cairn://`` work without an import.

kombu (5.x) has no entry-point group for transports: a transport is found through the dict
``kombu.transport.TRANSPORT_ALIASES``. This module, imported by the ``.pth`` file the package
installs into site-packages, puts a one-shot finder at the front of ``sys.meta_path`` that
waits for ``kombu.transport`` to be imported and then adds ``cairn`` and ``cairns`` to that
dict. It imports nothing but ``sys``, does nothing for any other import (one string compare),
and removes itself once kombu's transport package is loaded, so neither kombu nor cairn_kombu is
imported by interpreters that never use kombu. ``CAIRN_KOMBU_NO_PTH=1`` turns it off.
"""

import sys

_MODULE = "kombu.transport"
ALIASES = {"cairn": "cairn_kombu.transport:Transport", "cairns": "cairn_kombu.transport:SSLTransport"}


def _register(module) -> None:
    aliases = getattr(module, "TRANSPORT_ALIASES", None)
    if isinstance(aliases, dict):
        for name, target in ALIASES.items():
            aliases.setdefault(name, target)


class _Loader:
    """Wraps the real loader of ``kombu.transport``: runs it, then registers the aliases."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader
        module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != _MODULE:
            return None
        _uninstall()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def _uninstall() -> None:
    try:
        sys.meta_path.remove(_Finder)
    except ValueError:
        pass


def install() -> None:
    module = sys.modules.get(_MODULE)
    if module is not None:  # already imported (a .pth run late): register now
        _register(module)
    elif _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)


install()

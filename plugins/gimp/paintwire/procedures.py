"""The PDB procedures: their names, menu entries, arguments and return values,
and the run function that joins GIMP's side (document, progress, dialog) to
jobs.run.

"Paintwire..." (plug-in-paintwire) runs any mode the server offers: its
dialog has a mode chooser, and scripts name the mode in its ``mode`` argument
(``paintwire info`` lists them). The named entries open the same dialog on
one mode. Every generation procedure takes the same arguments (actions.ARGS),
so a batch script calls them all alike:

    proc = Gimp.get_pdb().lookup_procedure("plug-in-paintwire-inpaint")
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    config.set_property("params-json", '{"method": "telea"}')
    result = proc.run(config)   # status, new-image, layer
"""

from __future__ import annotations

import traceback

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import GLib, GObject, Gimp  # noqa: E402

import actions  # noqa: E402
import jobs  # noqa: E402
import settings  # noqa: E402
from actions import ARGS, CONNECTION_PROC, GENERIC_PROC, MENU, MODE_ARG, SHORTCUT_BY_PROC, SHORTCUTS, Args, PluginError  # noqa: E402
from gimp_document import GimpDocument, GimpProgress  # noqa: E402

RW = GObject.ParamFlags.READWRITE
AUTHOR = "Paintwire contributors"


GENERIC_BLURB = "Run any mode the Paintwire server offers, chosen in the dialog (or by the mode argument)."


def names() -> list[str]:
    return [GENERIC_PROC] + [s.proc_name for s in SHORTCUTS] + [CONNECTION_PROC]


def create(plugin, name: str):
    if name == CONNECTION_PROC:
        return _create_connection(plugin)
    shortcut = SHORTCUT_BY_PROC.get(name)
    procedure = Gimp.ImageProcedure.new(plugin, name, Gimp.PDBProcType.PLUGIN, run_action, None)
    procedure.set_image_types("RGB*, GRAY*")
    procedure.set_sensitivity_mask(
        Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
    )
    procedure.set_menu_label(shortcut.menu_label if shortcut else "_Paintwire...")
    procedure.add_menu_path(MENU)
    blurb = shortcut.blurb if shortcut else GENERIC_BLURB
    procedure.set_documentation(blurb, _help(blurb), name)
    procedure.set_attribution(AUTHOR, AUTHOR, "2026")
    for arg in ARGS:
        _add_argument(procedure, arg, shortcut.default_source if (shortcut and arg.name == "source") else arg.default)
    if shortcut is None:
        _add_argument(procedure, MODE_ARG, MODE_ARG.default)
    procedure.add_image_return_value("new-image", "New image", "The image a resized result opened in (upscale, expand), or none.", True, RW)
    procedure.add_layer_return_value("layer", "Layer", "The inserted result layer (or the group holding several).", True, RW)
    return procedure


def _help(blurb: str) -> str:
    return (
        f"{blurb} Runs on a Paintwire server (Filters > Paintwire > Connection sets its address). "
        "The selection is the mask (the whole canvas when nothing is selected); the input is the active layer "
        "(source=layer) or everything visible (source=visible). Results become new layers at their place, "
        "named after the prompt and seed, in one undo step. Server parameters without their own argument go in "
        "params-json as a JSON object; layers that guide the job (control layers) go in controls-json as a JSON list."
    )


def _add_argument(procedure, arg: actions.ArgDef, default) -> None:
    if arg.kind == "string":
        procedure.add_string_argument(arg.name, arg.nick, arg.blurb, default, RW)
    elif arg.kind == "int":
        procedure.add_int_argument(arg.name, arg.nick, arg.blurb, int(arg.minimum), int(arg.maximum), default, RW)
    elif arg.kind == "double":
        procedure.add_double_argument(arg.name, arg.nick, arg.blurb, arg.minimum, arg.maximum, default, RW)
    else:
        raise AssertionError(arg.kind)


def _error(procedure, message: str):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def run_action(procedure, run_mode, image, drawables, config, run_data):
    shortcut = SHORTCUT_BY_PROC.get(procedure.get_name())
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    arg_names = [arg.name for arg in ARGS] + ([] if shortcut else [MODE_ARG.name])
    try:
        args = Args.from_values({name: config.get_property(name) for name in arg_names})
        document = GimpDocument(image, drawables, interactive)
        document.check()
        dialog = None
        if interactive:
            import dialogs  # GTK only when there is a screen to show it on

            dialog = dialogs.job_dialog(procedure, bool(drawables))
        connection = settings.load(Gimp.directory())
        mode = shortcut.mode if shortcut else args.mode
        outcome = jobs.run(mode, args, connection, document, GimpProgress(), dialog=dialog, mode_fixed=shortcut is not None)
    except jobs.DialogClosed:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    except PluginError as exc:
        return _error(procedure, str(exc))
    except Exception as exc:  # a bug: say so in GIMP rather than dying with a traceback nobody sees
        traceback.print_exc()
        return _error(procedure, f"Paintwire plug-in error: {type(exc).__name__}: {exc}")
    for name, value in outcome.args.to_values().items():
        if name in arg_names:
            config.set_property(name, value)  # what the dialog chose becomes the procedure's last values
    new_image, layer = outcome.written
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)
    _set_return(values, 1, Gimp.Image, new_image)
    _set_return(values, 2, Gimp.Layer, layer)
    return values


def _set_return(values, index: int, gtype, obj) -> None:
    value = GObject.Value(gtype, obj)
    values.remove(index)
    values.insert(index, value)


# --- connection settings -----------------------------------------------------------------


def _create_connection(plugin):
    procedure = Gimp.ImageProcedure.new(plugin, CONNECTION_PROC, Gimp.PDBProcType.PLUGIN, run_connection, None)
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
    procedure.set_menu_label("_Connection...")
    procedure.add_menu_path(MENU)
    procedure.set_documentation(
        "Set the Paintwire server address and token",
        "Stores the server's websocket address (ws://host:port/ws), its access token (empty when the server needs none) "
        "and how long to wait for the server, for every Paintwire procedure. The environment variables PAINTWIRE_URL "
        "and PAINTWIRE_TOKEN override them.",
        CONNECTION_PROC,
    )
    procedure.set_attribution(AUTHOR, AUTHOR, "2026")
    procedure.add_string_argument("url", "Server address", "Websocket address of the server.", settings.DEFAULT_URL, RW)
    procedure.add_string_argument("token", "Token", "Access token; empty when the server needs none.", "", RW)
    procedure.add_double_argument(
        "timeout", "Wait (seconds)", "How long to wait for news from the server before giving up.", 1.0, 86400.0, settings.DEFAULT_TIMEOUT, RW
    )
    return procedure


def run_connection(procedure, run_mode, image, drawables, config, run_data):
    profile = Gimp.directory()
    if run_mode == Gimp.RunMode.INTERACTIVE:
        current = settings.load(profile, environ={})
        config.set_property("url", current.url)
        config.set_property("token", current.token)
        config.set_property("timeout", current.timeout)
        import dialogs

        if not dialogs.connection_dialog(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    connection = settings.Connection(
        url=config.get_property("url").strip(), token=config.get_property("token").strip(), timeout=config.get_property("timeout")
    )
    problem = settings.check_url(connection.url)
    if problem:
        return _error(procedure, problem)
    try:
        settings.save(profile, connection)
    except OSError as exc:
        return _error(procedure, f"Cannot save the Paintwire settings: {exc}")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)

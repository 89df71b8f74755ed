"""``flowlab derive``: the update rule, the endpoint predictions and which one is the data, derived."""
from __future__ import annotations

import argparse
import json

from ..conventions import CONVENTIONAL, REVERSED

NAME = "derive"
HELP = "derive the endpoint predictions (pred_x0, pred_x1) of a convention and say which one is the data"
DESCRIPTION = """\
Derive, with SymPy, what the Euler update rule x' = x + (s' - s) v predicts when it jumps to an
endpoint (s' = 0: pred_x0, s' = 1: pred_x1), and prove which one is the data and which one is the
noise by substituting the convention's interpolant and velocity target. D = data, E = standard
Gaussian noise, v = network output. Formulas use each convention's own time symbol: sigma
(conventional, runs 1 -> 0) or t (reversed, runs 0 -> 1).

JSON output (--json): one object with two keys.
  "conventions": a list, one object per convention, with keys
      convention        name ("conventional" or "reversed")
      symbol            its time symbol ("sigma" or "t")
      sampling          direction of time while sampling, e.g. "t runs 0 -> 1"
      noise_at, data_at where the noise and the data live, e.g. "t = 0"
      interpolant       e.g. "x = t*D + (1 - t)*E"
      velocity_target   the training target, e.g. "v = D - E"
      update_rule       the Euler step, e.g. "x' = x + (t' - t)*v"
      pred_x0, pred_x1  the Euler jumps to time 0 and to time 1, e.g. "x - t*v"
      pred_x0_is, pred_x1_is   "data" or "noise" (proved symbolically)
      data_prediction   which of "pred_x0" / "pred_x1" is the data
      noise_prediction  which of "pred_x0" / "pred_x1" is the noise
      jump_is_exact     true: the jumps equal D and E exactly for the conditional velocity
      systems           who uses the convention
  "map": the map between the two conventions, with keys
      time              "t = 1 - sigma"
      velocity          "v_rev(x, t) = -v_conv(x, 1 - t)"
      euler_updates_coincide                        true when proved symbolically
      pred_x1_reversed_equals_pred_x0_conventional  true when proved symbolically

Examples:
  flowlab derive                                 both conventions, human-readable
  flowlab derive --convention reversed --json    Hunyuan3D-2's convention as JSON"""

CHOICES = (CONVENTIONAL.name, REVERSED.name, "both")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--convention", choices=CHOICES, default="both",
                        help="which convention to derive (default: both)")
    parser.add_argument("--json", action="store_true", help="print JSON (keys described above) instead of text")


def derive(which: str) -> dict:
    """The JSON-able result of ``flowlab derive --convention which`` (see DESCRIPTION for keys)."""
    from .. import symbolic as Y
    from ..errors import FlowlabError

    if which not in CHOICES:
        raise FlowlabError(f"unknown convention {which!r}; choose one of {', '.join(CHOICES)}")
    names = [CONVENTIONAL.name, REVERSED.name] if which == "both" else [which]
    return {
        "conventions": [Y.convention_report(name) for name in names],
        "map": {
            "time": "t = 1 - sigma",
            "velocity": "v_rev(x, t) = -v_conv(x, 1 - t)",
            "euler_updates_coincide": Y.vanishes(Y.euler_map_remainder()),
            "pred_x1_reversed_equals_pred_x0_conventional": Y.vanishes(Y.prediction_map_remainder()),
        },
    }


def format_text(result: dict) -> str:
    """Human-readable rendering of :func:`derive`'s result."""
    lines = ["D = data, E = standard Gaussian noise, v = network output; "
             "pred_xK = the Euler jump x + (K - time)*v to time K."]
    for rep in result["conventions"]:
        sym = rep["symbol"]
        lines += [
            "",
            f"{rep['convention']} convention ({rep['systems']})",
            f"  sampling         {rep['sampling']} (noise at {rep['noise_at']}, data at {rep['data_at']})",
            f"  interpolant      {rep['interpolant']}",
            f"  velocity target  {rep['velocity_target']}",
            f"  update rule      {rep['update_rule']}",
        ]
        for k in (0, 1):
            key = f"pred_x{k}"
            formula = rep[key]
            lines.append(f"  {key} = {formula:<20} the {rep[key + '_is'].upper():<5}  (jump to {sym} = {k})")
        exact = "exact" if rep["jump_is_exact"] else "NOT exact"
        lines.append(f"  data prediction  {rep['data_prediction']} = {rep[rep['data_prediction']]} "
                     f"({exact} for the conditional velocity)")
    m = result["map"]
    proved = {True: "proved", False: "NOT proved"}
    lines += [
        "",
        f"map: {m['time']}, {m['velocity']}",
        f"  Euler updates coincide: {proved[m['euler_updates_coincide']]}",
        "  pred_x1(reversed) == pred_x0(conventional): "
        f"{proved[m['pred_x1_reversed_equals_pred_x0_conventional']]}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = derive(args.convention)
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0

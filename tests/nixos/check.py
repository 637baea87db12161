#!/usr/bin/env python3
"""tests/nixos/run's checks over what eval.nix, eval-lib2026.nix and flake-eval.nix reported.

Per test configuration (cases/*.nix): the assertions that must fire do, and no other; the
warnings; the settings (jq conditions); the JSON nixpkgs' TOML writer is handed is the settings;
that JSON written by both TOML writers (remarshal's json2toml as pkgs.formats.toml ran it up to
25.11, and json2x's serialisation from 26.05) passes `darlings check --config-only`, and both
files give the same `darlings plan`, which meets the case's jq conditions (and, for the preset
cross-check, is the plan of a hand-written darlings.toml); for a case that turns every preset on,
its entries are presets/presets.toml's; what a case inspects of the system; for whole systems, the
initrd units or the stage-1 script and the stage-2 units; with the 2026 lib, the same settings,
assertions and warnings. Then every form the issue lists has a passing configuration, and the
flake's outputs instantiated. Prints one line per check and exits 1 on any problem.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

# The forms of issue 9, item 3 (and its CI tier), each of which needs a passing configuration.
REQUIRED_FORMS = [
    "mode:symbolic",
    "mode:octal",
    "store:directory-on-needed-fs",
    "store:nested",
    "store:enable",
    "store:persistentStoragePath",
    "entry:persistentStoragePath",
    "store:hideMounts",
    "entry:hideMount",
    "store:allowTrash",
    "store:enableWarnings",
    "path:trailing-slash",
    "file:method-auto",
    "file:method-symlink",
    "removed:allowOther",
    "removed:removePrefixDirectory",
    "removed:defaultDirectoryMethod",
    "removed:directory-method",
    "users:from-users.users",
    "home-manager:home.persistence",
    "machine-id",
    "full:systemd-btrfs",
    "full:scripted-zfs",
    "full:systemd-zfs",
    "full:tmpfs-diff",
    "refused:store-on-root",
    "refused:store-not-neededForBoot",
    # Issue 12, item 3: persistence levels and presets.
    "presets:seed-example",
    "presets:override",
    "presets:override-empty",
    "presets:when-false",
    "presets:when-true",
    "presets:forced",
    "presets:levels",
    "presets:inherit",
    "presets:user-covers",
    "presets:user-same-path",
    "presets:reconcile",
    "presets:entry-forms",
    "presets:logrotate-state",
    "presets:all",
    "presets:cross-check",
    "refused:presets",
]

problems = 0


def problem(msg):
    global problems
    problems += 1
    print(f"  PROBLEM: {msg}")


def jq_true(expr, value):
    """Whether the jq condition holds of value (jq is what the case files are written for)."""
    out = subprocess.run(
        ["jq", expr], input=json.dumps(value), capture_output=True, text=True
    )
    return out.stdout.strip() == "true", (out.stdout.strip() or out.stderr.strip())


def unit_directives(text):
    """The whitespace-separated values of each directive of a unit file's text."""
    d = {}
    for line in (text or "").splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            d.setdefault(m.group(1), []).extend(m.group(2).split())
    return d


def upstream_initrd_units(nixpkgs):
    """The upstream units nixpkgs puts into the systemd initrd (initrd.nix's upstreamUnits)."""
    text = (nixpkgs / "nixos/modules/system/boot/systemd/initrd.nix").read_text()
    m = re.search(r"upstreamUnits = \[(.*?)\]", text, re.S)
    return set(re.findall(r'"([^"]+)"', m.group(1))) if m else set()


def escape_path(p):
    """systemd-escape --path, for the mount units the initrd's fstab generator makes."""
    p = p.strip("/")
    out = []
    for i, ch in enumerate(p):
        if ch == "/":
            out.append("-")
        elif ch.isalnum() or ch in ":_" or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.append("\\x%02x" % ord(ch))
    return "".join(out) or "-"


def check_systemd_initrd(name, r, nixpkgs):
    units = r["initrdUnits"]
    upstream = upstream_initrd_units(nixpkgs)
    if not upstream:
        problem(f"{name}: could not read upstreamUnits from {nixpkgs}'s initrd.nix")
    # Units the fstab generator makes in the initrd: /sysroot plus every neededForBoot mount.
    mounts = {"sysroot.mount"}
    for fs in r["fileSystems"].values():
        if fs["mountPoint"] != "/" and (fs["neededForBoot"] or fs["mountPoint"] in (
                "/nix", "/nix/store", "/var", "/var/log", "/var/lib", "/etc", "/usr")):
            mounts.add(escape_path("/sysroot" + fs["mountPoint"]) + ".mount")
    known = set(units) | upstream | mounts
    early, late = (unit_directives(units.get(f"darlings-{s}.service")) for s in ("early", "late"))
    svc = r["initrdServices"]
    checks = [
        ("darlings-early is ordered before sysroot.mount", "sysroot.mount" in early.get("Before", [])),
        ("sysroot.mount requires darlings-early", svc["darlings-early"]["requiredBy"] == ["sysroot.mount"]),
        ("darlings-early runs after the root device and the resume", {"initrd-root-device.target", "systemd-hibernate-resume.service", "local-fs-pre.target"} <= set(early.get("After", []))),
        ("darlings-late runs after initrd-fs.target", "initrd-fs.target" in late.get("After", [])),
        ("darlings-late runs before NixOS's activation in the initrd", "initrd-nixos-activation.service" in late.get("Before", []) and "initrd-nixos-activation.service" in units),
        ("initrd.target requires darlings-late", svc["darlings-late"]["requiredBy"] == ["initrd.target"]),
        ("darlings-late requires the mounts of every store", all(f"/sysroot{s['store']}" in late.get("RequiresMountsFor", []) for s in r["settings"]["persist"])),
        ("the initrd carries the binary and the config", any(p.endswith("/bin/darlings") for p in r["initrdStorePaths"]) and "/etc/darlings.toml" in r["initrdContents"]),
    ]
    # Every unit darlings orders against exists in this initrd (a misspelt name orders nothing).
    for unit, d in (("darlings-early", early), ("darlings-late", late)):
        for key in ("After", "Before", "Wants", "Requires", "OnFailure"):
            for ref in d.get(key, []):
                if ref.endswith(".device") or ref == "darlings-early.service":
                    continue
                checks.append((f"{unit} {key}={ref} is a unit of this initrd", ref in known))
    # No ordering cycle through darlings' units, over every unit NixOS rendered the text of.
    graph = {}
    for u, text in units.items():
        d = unit_directives(text)
        for a in d.get("After", []):
            graph.setdefault(a, set()).add(u)
        for b in d.get("Before", []):
            graph.setdefault(u, set()).add(b)

    def reaches(src, dst, seen=()):
        return any(n == dst or (n not in seen and reaches(n, dst, seen + (n,))) for n in graph.get(src, ()))

    for u in ("darlings-early.service", "darlings-late.service"):
        checks.append((f"no ordering cycle through {u}", not reaches(u, u)))
    return checks


def check_zfs_import(name, r):
    units = r["initrdUnits"]
    imports = [u for u in units if u.startswith("zfs-import-") and u.endswith(".service")]
    early = unit_directives(units.get("darlings-early.service"))
    out = [("nixpkgs' ZFS module generated an initrd import unit", bool(imports))]
    for u in imports:
        d = unit_directives(units[u])
        out.append((f"darlings-early runs after {u}", u in early.get("After", [])))
        out.append((f"{u} is ordered before sysroot.mount, as darlings-early", "sysroot.mount" in d.get("Before", [])))
        out.append((f"{u} does not wait for darlings", not any(x.startswith("darlings-") for x in d.get("After", []))))
    return out


def check_stage1(name, r, repo):
    script = r["stage1"]
    hooks = {}
    for stage in ("early", "late"):
        text = (repo / f"initrd/nixos/{stage}-hook.sh").read_text()
        hooks[stage] = text.replace("@darlings@", "darlings").replace("@config@", "/etc/darlings.toml")

    def at(marker):
        return script.find(marker)

    pos = {
        "zfs import (24.05, postDeviceCommands)": at('importing root ZFS pool'),
        "resume attempt": at('> /sys/power/resume'),
        "zfs import as 24.11+ places it (postResumeCommands)": at("ZFS-IMPORT-AS-IN-NIXOS-24.11"),
        "darlings early stage": at(hooks["early"].strip()),
        "root mounted (mountFS)": at('mountFS "$device"'),
        "darlings late stage": at(hooks["late"].strip()),
        "switch_root": at("exec env -i $(type -P switch_root)"),
    }
    out = [(f"the stage-1 script contains: {k}", v >= 0) for k, v in pos.items()
           if "zfs" not in k or r["settings"]["root"]["backend"] == "zfs"]
    order = [k for k in pos if pos[k] >= 0]
    out.append(("stage 1 runs, in order: " + " < ".join(order), order == sorted(order, key=pos.get)))
    out.append(("stage 1's extra utils copy the binary", "copy_bin_and_libs" in r["extraUtilsCommands"] and "/bin/darlings" in r["extraUtilsCommands"]))
    out.append(("stage 1 carries the config", "/etc/darlings.toml" in r["extraFiles"]))
    return out


def check_units(name, r, tags, nixpkgs, repo):
    checks = [("the system's toplevel drvPath instantiated", Path(r.get("toplevel", "")).is_file())]
    for tag in tags:
        if tag == "systemd-ordering":
            checks += check_systemd_initrd(name, r, nixpkgs)
        elif tag == "zfs-import-before-darlings":
            checks += check_zfs_import(name, r)
        elif tag == "stage1-order":
            checks += check_stage1(name, r, repo)
        elif tag == "machine-id-commit":
            text = r["stage2Units"].get("systemd-machine-id-commit.service") or ""
            checks.append(("systemd-machine-id-commit.service runs on the first boot only", "ConditionFirstBoot=true" in text.splitlines()))
            checks.append(("the initrd suppresses systemd-machine-id-commit.service", "systemd-machine-id-commit.service" in r["suppressedUnits"]))
        elif tag == "save-diff":
            d = unit_directives(r["stage2Units"].get("darlings-save-diff.service"))
            stores = [s["store"] for s in r["settings"]["persist"]]
            checks.append(("darlings-save-diff writes the report when stopped", any(x.endswith("--save") for x in d.get("ExecStop", []))))
            checks.append(("darlings-save-diff stops before the stores unmount", set(stores) <= set(d.get("RequiresMountsFor", []))))
        else:
            checks.append((f"unknown unit check {tag!r}", False))
    return checks


def darlings(bin_, *args):
    return subprocess.run([bin_, *args], capture_output=True, text=True)


def check_writers(name, r, a, work):
    """Both writers' TOML passes darlings check; both give one plan, which meets the case."""
    settings = r["settings"]
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "writer-input.json").write_text(r["writerInput"])
    (d / "structured-attrs.json").write_text(json.dumps({"value": settings}))
    files = {
        "remarshal": d / "remarshal.toml",
        "json2x": d / "json2x.toml",
    }
    runs = {
        "remarshal": [a.json2toml, str(d / "writer-input.json"), str(files["remarshal"])],
        "json2x": [a.json2x, "toml", str(d / "structured-attrs.json"), str(files["json2x"]), "--unwrap", "value"],
    }
    plans = {}
    ok = True
    for w, cmd in runs.items():
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            problem(f"{name}: the {w} writer failed: {out.stderr.strip()}")
            ok = False
            continue
        chk = darlings(a.darlings, "--config", str(files[w]), "check", "--config-only")
        if chk.returncode != 0:
            problem(f"{name}: darlings check --config-only refused the {w} TOML ({files[w]}):\n" + chk.stderr.strip())
            ok = False
            continue
        empty = work / "empty-root"
        empty.mkdir(exist_ok=True)
        plan = darlings(a.darlings, "--config", str(files[w]), "plan", "--json", "--root", str(empty))
        if plan.returncode != 0:
            problem(f"{name}: darlings plan refused the {w} TOML:\n" + plan.stderr.strip())
            ok = False
            continue
        plans[w] = json.loads(plan.stdout)
    if len(plans) == 2:
        if plans["remarshal"] != plans["json2x"]:
            problem(f"{name}: the two writers' TOML give different plans ({d})")
            ok = False
        cross = r["expect"]["crossCheck"]
        if cross is not None and not check_cross(name, cross, plans["json2x"], a, work):
            ok = False
        for e in r["expect"]["plan"]:
            good, got = jq_true(e, plans["json2x"])
            if not good:
                problem(f"{name}: plan: expected {e}, got {got}")
                ok = False
    return ok, len(plans)


def check_cross(name, toml, nixos_plan, a, work):
    """A hand-written darlings.toml ([levels], [presets]) plans what the NixOS module rendered.

    Steps are compared as sets (sorted by target): the two files list the entries in different
    orders, and the order of binds follows from their paths, not from the file.
    """
    path = Path(a.repo) / "tests/nixos" / toml
    plan = darlings(a.darlings, "--config", str(path), "plan", "--json", "--root", str(work / "empty-root"))
    if plan.returncode != 0:
        problem(f"{name}: darlings plan refused the hand-written {path}:\n" + plan.stderr.strip())
        return False
    ours = sorted(json.loads(plan.stdout)["steps"], key=lambda s: s["target"])
    theirs = sorted(nixos_plan["steps"], key=lambda s: s["target"])
    if ours != theirs:
        problem(f"{name}: {path} and the NixOS-rendered TOML give different plans:\n"
                f"    darlings.toml: {ours}\n    NixOS:         {theirs}")
        return False
    return True


def preset_entries(repo, levels):
    """What presets/presets.toml says every preset keeps, each entry in the store its level maps
    to, as (store, kind, path, preset, level, mode, method, user, group)."""
    import tomllib
    data = tomllib.loads((repo / "presets/presets.toml").read_text())["presets"]
    out = set()
    for preset, p in data.items():
        for e in p["entries"]:
            kind = "directory" if "directory" in e else "file"
            out.add((levels[e["level"]], kind, e[kind], preset, e["level"], e.get("mode"),
                     e.get("method"), e.get("user"), e.get("group")))
    return out


def rendered_entries(settings):
    out = set()
    for t in settings["persist"]:
        for kind, key in (("directory", "directories"), ("file", "files")):
            for e in t.get(key) or []:
                out.add((t["store"], kind, e["path"], e.get("preset"), e.get("level"), e.get("mode"),
                         e.get("method"), e.get("user"), e.get("group")))
    return out


def strip_ids(warnings):
    return [re.sub(r" \((users|groups) without [^)]*\)", "", w) for w in warnings or []]


def matches_all(expected, messages):
    """Every expected substring is in some message, and every message has one."""
    missing = [e for e in expected if not any(e in m for m in messages)]
    extra = [m for m in messages if not any(e in m for e in expected)]
    return missing, extra


def main():
    p = argparse.ArgumentParser()
    for opt in ("eval", "lib2026", "flake", "nixpkgs", "darlings", "json2toml", "json2x", "work", "repo"):
        p.add_argument("--" + opt, required=True)
    a = p.parse_args()
    cases = json.loads(Path(a.eval).read_text())
    lib26 = json.loads(Path(a.lib2026).read_text())
    flake = json.loads(Path(a.flake).read_text())
    nixpkgs, repo, work = Path(a.nixpkgs), Path(a.repo), Path(a.work)

    covered = {}
    for name, r in sorted(cases.items()):
        before = problems
        ex = r["expect"]
        missing, extra = matches_all(ex["failures"], r["failed"])
        for m in missing:
            problem(f"{name}: the assertion {m!r} did not fire")
        for m in extra:
            problem(f"{name}: unexpected failed assertion: {m}")
        for w in ex["warnings"]:
            if not any(w in x for x in r["warnings"]):
                problem(f"{name}: no warning contains {w!r} (warnings: {r['warnings']})")
        for w in ex["noWarnings"]:
            for x in r["warnings"]:
                if w in x:
                    problem(f"{name}: unexpected warning: {x}")
        notes = [f"{len(r['failed'])} assertion(s) as expected" if ex["failures"] else "no assertion failed"]
        if not r["failed"]:
            for e in ex["settings"]:
                good, got = jq_true(e, r["settings"])
                if not good:
                    problem(f"{name}: settings: expected {e}, got {got}")
            for e in ex["inspect"]:
                good, got = jq_true(e, r["inspected"])
                if not good:
                    problem(f"{name}: inspect: expected {e}, got {got}")
            if ex["allPresets"] is not None:
                want = preset_entries(repo, ex["allPresets"])
                got = rendered_entries(r["settings"])
                for x in sorted(want - got, key=str):
                    problem(f"{name}: presets.toml's entry is not rendered: {x}")
                for x in sorted(got - want, key=str):
                    problem(f"{name}: rendered, but not an entry of presets.toml: {x}")
                notes.append(f"{len(want)} preset entries as presets.toml says")
            if r.get("enabled"):
                if not r["writerInputIsSettings"]:
                    problem(f"{name}: pkgs.formats.toml is not handed exactly the settings")
                if not r["checked"]:
                    problem(f"{name}: /etc/darlings.toml is not checked by darlings when built")
                good, n = check_writers(name, r, a, work)
                notes.append(f"TOML accepted from {n} writer(s), same plan")
                if ex["crossCheck"] is not None:
                    notes.append(f"the same plan as the hand-written {ex['crossCheck']}")
            if r["full"]:
                for label, good in check_units(name, r, ex["units"], nixpkgs, repo):
                    if not good:
                        problem(f"{name}: {label}")
                notes.append(f"{len(ex['units'])} unit check group(s)")
        # The same configuration with the 2026 lib.
        l = lib26["cases"].get(name)
        if l is None:
            problem(f"{name}: not evaluated with the 2026 lib")
        else:
            if l["failed"] != r["failed"]:
                problem(f"{name}: the 2026 lib fails other assertions: {l['failed']} (24.05: {r['failed']})")
            if not r["failed"] and l.get("settings") != r["settings"]:
                problem(f"{name}: the 2026 lib renders other settings:\n  {l.get('settings')}\n  24.05: {r['settings']}")
            # The stand-in NixOS declares none of NixOS's own system users, so the lists of
            # users and groups without ids differ; the warnings must be the same otherwise.
            if not r["failed"] and strip_ids(l.get("warnings")) != strip_ids(r["warnings"]):
                problem(f"{name}: the 2026 lib gives other warnings: {l.get('warnings')} (24.05: {r['warnings']})")
            notes.append(f"same with lib {lib26['lib']}")
        if problems == before:
            for f in r["forms"]:
                covered.setdefault(f, []).append(name)
            print(f"  ok   {name}: {r['about']} ({'; '.join(notes)})")

    for f in REQUIRED_FORMS:
        if f not in covered:
            problem(f"form {f} has no passing test configuration")
    print(f"  ok   {len(cases)} test configurations; {len(covered)} forms covered "
          f"({len([f for f in REQUIRED_FORMS if f in covered])} of the {len(REQUIRED_FORMS)} the issue lists)")

    # The flake's outputs.
    drvs = [("packages.x86_64-linux.default", flake["package"]),
            ("packages.aarch64-linux.default", flake["packageAarch64"]),
            ("overlays.default's darlings", flake["overlayPackage"]),
            ("default.nix", flake["defaultNix"]),
            ("a NixOS system with nixosModules.default", flake["systemToplevel"])]
    drvs += [(f"checks.x86_64-linux.{k}", v) for k, v in sorted(flake["checks"].items())]
    for label, drv in drvs:
        if Path(drv).is_file():
            print(f"  ok   {label} instantiates: {drv}")
        else:
            problem(f"{label}: {drv} was not instantiated")
    if len({flake["package"], flake["overlayPackage"], flake["defaultNix"]}) != 1:
        problem("packages.default, the overlay's darlings and default.nix are not one derivation")
    if flake["moduleDefaultPackage"] != flake["package"]:
        problem("nixosModules.default's darlings.package is not packages.default")
    else:
        print("  ok   through the flake's module, darlings.package is packages.default")
    if flake["packageSrcHasPresets"]:
        print("  ok   the package's source has presets/presets.toml, which the binary embeds")
    else:
        problem("package.nix's source lacks presets/presets.toml, which the binary embeds (include_str!)")
    if not flake["homeManagerModule"].endswith("/initrd/nixos/home-manager.nix"):
        problem(f"homeManagerModules.default is {flake['homeManagerModule']}")
    if len(flake["checks"]) != 3:
        problem(f"checks has {len(flake['checks'])} tests, expected 3")

    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

# Every preset turned on, every level on its own store: each preset's option is declared and
# evaluates to the data's entries (check.py compares the rendered entries with
# presets/presets.toml, entry by entry), and darlings accepts every path.
{
  about = "every preset on, four levels on four stores";
  forms = [ "presets:all" ];
  module =
    { lib, ... }:
    {
      imports = [ ../presets-layout.nix ];
      darlings.automaticPersistence = {
        transient.path = "/persist/transient";
        normal.path = "/persist";
        important.path = "/persistent";
        secret.path = "/persist/secret";
      };
      darlings.presets = lib.attrNames (lib.importTOML ../../../presets/presets.toml).presets;
    };
  # Each preset's `nixos.when` must name a boolean option of NixOS 24.05: a misspelt one would
  # count as false (a missing option is false on purpose) and the preset would never turn on.
  inspect =
    sys:
    let
      inherit (sys.pkgs) lib;
      data = (lib.importTOML ../../../presets/presets.toml).presets;
      switched = lib.filterAttrs (_: p: !lib.elem (p.nixos.when or "always") [ "always" ]) data;
    in
    {
      whens = lib.mapAttrs (
        _: p:
        let
          o = lib.attrByPath (lib.splitString "." p.nixos.when) null sys.options;
        in
        o != null && lib.isOption o && o.type.name == "bool"
      ) switched;
    };
  expect = {
    inspect = [ "[.whens[]] | all and length > 0" ];
    allPresets = {
      transient = "/persist/transient";
      normal = "/persist";
      important = "/persistent";
      secret = "/persist/secret";
    };
  };
}

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
  expect = {
    allPresets = {
      transient = "/persist/transient";
      normal = "/persist";
      important = "/persistent";
      secret = "/persist/secret";
    };
  };
}

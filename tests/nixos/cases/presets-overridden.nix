# A preset forced on by darlings.presets and overridden with `{ }` keeps nothing (journald); the
# machine id the user keeps in another store wins over the machine-id preset's (the same path is
# not kept twice).
{
  about = "an override {} drops a forced preset; the user's machine id wins";
  forms = [
    "presets:override-empty"
    "presets:user-same-path"
  ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      darlings.automaticPersistence.normal.path = "/persist";
      darlings.presets = [ "journald" ];
      services.journald.persistence = { };
      darlings.persistence."/persistent".files = [ "/etc/machine-id" ];
    };
  expect = {
    settings = [
      ''.persist == [{store: "/persistent", "hide-mounts": false, files: [{path: "/etc/machine-id"}]}]''
    ];
  };
}

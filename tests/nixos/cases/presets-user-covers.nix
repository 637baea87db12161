# The user's own /var/log covers journald's /var/log/journal, which is dropped rather than
# refused as an entry inside a persisted directory; the preset's other entries stay.
{
  about = "a user's /var/log covers journald's /var/log/journal";
  forms = [ "presets:user-covers" ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      darlings.automaticPersistence.normal.path = "/persist";
      darlings.presets = [
        "journald"
        "systemd-timers"
      ];
      environment.machineId.persistence = { };
      darlings.persistence."/persistent".directories = [ "/var/log" ];
    };
  expect = {
    settings = [
      ''.persist == [{store: "/persist", "hide-mounts": false, directories: [{path: "/var/lib/systemd/timers", preset: "systemd-timers", level: "normal"}]}, {store: "/persistent", "hide-mounts": false, directories: [{path: "/var/log"}]}]''
    ];
  };
}

# A preset whose `when` option is false gives nothing (bluetooth, tailscale: not enabled); one
# without a NixOS switch is on only when darlings.presets lists it (journald, systemd-timers),
# whatever `when` says otherwise.
{
  about = "when false gives nothing; darlings.presets turns presets on";
  forms = [
    "presets:when-false"
    "presets:forced"
  ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      hardware.bluetooth.enable = false;
      darlings.automaticPersistence.normal.path = "/persist";
      environment.machineId.persistence = { };
      darlings.presets = [
        "journald"
        "systemd-timers"
      ];
    };
  expect = {
    settings = [
      ''.persist | map(.store) == ["/persist"] and .[0]."hide-mounts" == false and .[0].files == null''
      ''.persist[0].directories | sort_by(.path) == [{path: "/var/lib/systemd/timers", preset: "systemd-timers", level: "normal"}, {path: "/var/log/journal", preset: "journald", level: "normal"}]''
    ];
  };
}

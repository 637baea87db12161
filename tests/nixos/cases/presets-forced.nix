# A preset whose `when` option is false gives nothing (bluetooth, tailscale: not enabled); one
# without a NixOS switch is on only when darlings.presets lists it (journald, systemd-timers);
# setting the option of one that is not listed (nixos-ids) does nothing but warn.
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
      # Set, but nixos-ids has no NixOS switch and is not listed: nothing, and a warning.
      users.persistence.important.directories = [ "/var/lib/nixos" ];
    };
  expect = {
    warnings = [
      "darlings: users.persistence is set, but preset nixos-ids is on only when darlings.presets lists it; add \"nixos-ids\" to darlings.presets"
      "/var/lib/nixos is not persisted"
    ];
    settings = [
      ''.persist | map(.store) == ["/persist"] and .[0]."hide-mounts" == false and .[0].files == null''
      ''.persist[0].directories | sort_by(.path) == [{path: "/var/lib/systemd/timers", preset: "systemd-timers", level: "normal"}, {path: "/var/log/journal", preset: "journald", level: "normal"}]''
    ];
  };
}

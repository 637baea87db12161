# rehno-lindeque/nixos-impermanence's README example, renamed (environment.automaticPersistence
# and environment.persistence to darlings.*), with NetworkManager enabled: the machine id is not
# kept, NetworkManager's whole /var/lib/NetworkManager is, at the normal level, and not the
# preset's default entries. NixOS turns sudo, systemd-coredump, logrotate and timesyncd on by
# default; they are set off here (the 2026-lib evaluation has no such defaults), so the entries
# are the example's alone.
{
  about = "the seed's example, renamed, NetworkManager enabled";
  forms = [
    "presets:seed-example"
    "presets:override"
  ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      networking.networkmanager.enable = true;

      darlings.automaticPersistence.normal.path = "/persistence";
      environment.machineId.persistence = { };
      networking.networkmanager.persistence = {
        normal.directories = [ "/var/lib/NetworkManager" ];
      };
      darlings.persistence."/persistent" = {
        hideMounts = true;
        directories = [ "/var/log" ];
      };
    };
  expect = {
    settings = [
      ''.persist | map(.store) == ["/persistence", "/persistent"]''
      ''.persist[0] == {store: "/persistence", "hide-mounts": false, directories: [{path: "/var/lib/NetworkManager", preset: "networkmanager", level: "normal"}]}''
      ''.persist[1] == {store: "/persistent", "hide-mounts": true, directories: [{path: "/var/log"}]}''
    ];
    plan = [
      ''[.steps[] | select(.op == "bind") | .target] | sort == ["/var/lib/NetworkManager", "/var/log"]''
      ''any(.steps[]; .target == "/var/lib/NetworkManager" and .source == "/persistence/var/lib/NetworkManager")''
    ];
  };
}

# Two levels on two stores: normal on /persist, secret on /persist/secret (a directory in it),
# with the OpenSSH server enabled. The host keys (secret) go to /persist/secret as links, as the
# preset says; the machine id (normal) and NixOS's id maps (important, turned on by
# darlings.presets, with important inheriting normal's store) go to /persist. transient has no
# store, so NetworkManager's /var/lib/NetworkManager (transient) is dropped while its
# system-connections (secret) is kept.
{
  about = "levels on two stores; openssh's host keys at secret, important inheriting normal";
  forms = [
    "presets:levels"
    "presets:inherit"
    "presets:when-true"
    "presets:forced"
    "machine-id"
  ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      services.openssh.enable = true;
      networking.networkmanager.enable = true;
      # null, as in the seed's own example, inherits like a level left out.
      darlings.automaticPersistence = {
        transient = null;
        normal.path = "/persist";
        important = null;
        secret.path = "/persist/secret/";
      };
      darlings.presets = [ "nixos-ids" ];
    };
  expect = {
    settings = [
      ''.persist | map(.store) == ["/persist", "/persist/secret"]''
      ''.persist[0].files == [{path: "/etc/machine-id", mode: "0444", preset: "machine-id", level: "normal"}]''
      ''.persist[0].directories == [{path: "/var/lib/nixos", preset: "nixos-ids", level: "important"}]''
      ''.persist[1].files | map(.path) == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub"]''
      ''.persist[1].files | all(.method == "symlink" and .preset == "openssh" and .level == "secret")''
      ''.persist[1].files[0].mode == "0600"''
      ''.persist[1].directories == [{path: "/etc/NetworkManager/system-connections", mode: "0700", preset: "networkmanager", level: "secret"}]''
    ];
    plan = [
      ''any(.steps[]; .target == "/etc/ssh/ssh_host_ed25519_key" and .source == "/persist/secret/etc/ssh/ssh_host_ed25519_key")''
      ''any(.steps[]; .target == "/var/lib/nixos" and .source == "/persist/var/lib/nixos")''
      ''all(.steps[]; .target != "/var/lib/NetworkManager")''
    ];
    noWarnings = [ "/var/lib/nixos is not persisted" ];
  };
}

# The cross-check: the NixOS module's levels and presets and darlings.toml's ([levels],
# [presets]) are one feature. This configuration's rendered TOML and the hand-written
# tests/nixos/presets-cross-check.toml must give the same `darlings plan --json`: the same
# entries in the same stores, with the same preset and level origins, and the same preset entry
# dropped for the user's own.
{
  about = "presets in NixOS and in darlings.toml give one plan";
  forms = [ "presets:cross-check" ];
  module =
    { ... }:
    {
      imports = [ ../presets-layout.nix ];
      services.openssh.enable = true;
      networking.networkmanager.enable = true;
      darlings.automaticPersistence = {
        normal.path = "/persist";
        secret.path = "/persist/secret";
      };
      # journald's /var/log/journal lies in the user's /var/log: dropped on both sides.
      darlings.presets = [
        "nixos-ids"
        "journald"
      ];
      environment.machineId.persistence = { };
      networking.networkmanager.persistence.normal.directories = [ "/var/lib/NetworkManager" ];
      # The presets' entries in /persist take the hideMounts of the user's attribute for that
      # store, as in darlings.toml they take their [[persist]] table's, though presets.nix puts
      # them in the attribute "/persist".
      darlings.persistence.system = {
        persistentStoragePath = "/persist";
        hideMounts = true;
        directories = [ "/var/log" ];
      };
    };
  expect = {
    crossCheck = "presets-cross-check.toml";
    plan = [
      ''[.steps[] | .target] | sort == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub", "/var/lib/NetworkManager", "/var/lib/nixos", "/var/log"]''
      ''any(.steps[]; .target == "/etc/ssh/ssh_host_rsa_key" and .store == "/persist/secret" and .method == "symlink" and .preset == "openssh" and .level == "secret")''
      ''any(.steps[]; .target == "/var/lib/nixos" and .store == "/persist" and .preset == "nixos-ids" and .level == "important" and .hide)''
      ''any(.steps[]; .target == "/var/log" and .preset == null and .level == null)''
    ];
  };
}

# initrd/nixos/example.nix, the README's ZFS example, as a whole system.
{
  about = "initrd/nixos/example.nix";
  forms = [ "example" ];
  full = true;
  module = {
    imports = [ ../../../initrd/nixos/example.nix ];
    users.users.alice = {
      isNormalUser = true;
      uid = 1000;
    };
  };
  expect = {
    settings = [
      ''.persist[0].users.alice.uid == 1000''
      # No fleet reports asked for: no [report] table, darlings' defaults.
      ''has("report") | not''
    ];
    plan = [ ''any(.steps[]; .target == "/etc/ssh/ssh_host_ed25519_key" and .mode == "0600" and (.parents | map(.mode) | unique) == ["0755"])'' ];
    units = [ "systemd-ordering" "zfs-import-before-darlings" "machine-id-commit" ];
  };
}

# A whole system: tmpfs root with the lost-state report written at shutdown (diff.onBoot), and
# the NixOS wiki's layout: the store is a directory on the neededForBoot /nix filesystem
# (/nix/persist/system), not a mount point of its own. Scripted stage 1.
{
  about = "tmpfs root + diff.onBoot, store /nix/persist/system on /nix, user with directories and files";
  forms = [
    "full:tmpfs-diff"
    "store:directory-on-needed-fs"
  ];
  full = true;
  module =
    { ... }:
    {
      boot.initrd.systemd.enable = false;
      fileSystems."/" = {
        device = "none";
        fsType = "tmpfs";
        options = [
          "defaults"
          "size=25%"
          "mode=755"
        ];
      };
      fileSystems."/nix" = {
        device = "/dev/disk/by-label/nix";
        fsType = "ext4";
        neededForBoot = true;
      };
      fileSystems."/boot" = {
        device = "/dev/disk/by-label/boot";
        fsType = "vfat";
      };
      users.users.erin = {
        isNormalUser = true;
        uid = 1003;
      };
      darlings = {
        enable = true;
        root = {
          backend = "tmpfs";
          size = "25%";
        };
        diff = {
          onBoot = true;
          reportDir = "/nix/persist/system/var/log/darlings";
        };
        report.prometheus = "/var/lib/prometheus-node-exporter-text-files/darlings.prom";
        persistence."/nix/persist/system" = {
          hideMounts = true;
          directories = [
            "/var/log"
            "/var/lib/nixos"
          ];
          files = [ "/etc/machine-id" ];
          users.erin = {
            directories = [ "Documents" ];
            files = [ ".bash_history" ];
          };
        };
      };
    };
  expect = {
    settings = [
      ''.persist | map(.store) == ["/nix/persist/system"]''
      ''.diff == {"on-boot": true, "report-dir": "/nix/persist/system/var/log/darlings", ignore: []}''
      ''.report == {prometheus: "/var/lib/prometheus-node-exporter-text-files/darlings.prom"}''
    ];
    plan = [ ''any(.steps[]; .target == "/var/log" and .source == "/nix/persist/system/var/log")'' ];
    units = [ "stage1-order" "save-diff" "machine-id-commit" ];
  };
}

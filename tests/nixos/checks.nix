# The flake's checks: NixOS VM tests (pkgs.testers.runNixOSTest) that boot darlings three times
# each and look at what survived: systemd initrd + Btrfs, scripted stage 1 + ZFS, tmpfs root with
# the shutdown-time diff. Each VM formats its empty disk in the initrd on the first boot (a test
# step, placed before darlings-early), so the boots after it are what a real machine sees.
# CI here cannot build them (no binary cache, no KVM): tests/nixos/run instantiates each one's
# drvPath, which evaluates the whole VM system and the test driver.
{ pkgs, module }:
let
  inherit (pkgs) lib;

  # What every test machine shares: a user with declared home, uid and gid (so their entries
  # bind in the initrd), and a store with the usual impermanence entries.
  common =
    { store }:
    {
      imports = [ module ];
      virtualisation.useDefaultFilesystems = false;
      virtualisation.graphics = false;
      users.users.alice = {
        isNormalUser = true;
        uid = 1000;
      };
      darlings = {
        enable = true;
        onFailure = "halt";
        persistence.${store} = {
          hideMounts = true;
          directories = [
            "/var/log"
            "/var/lib/nixos"
            {
              directory = "/var/lib/kept";
              mode = "u=rwx,g=rx,o=";
            }
          ];
          files = [
            "/etc/machine-id"
            {
              file = "/etc/kept.conf";
              method = "symlink";
            }
          ];
          users.alice = {
            directories = [
              "Documents"
              {
                directory = ".ssh";
                mode = "0700";
              }
            ];
            files = [ ".bash_history" ];
          };
        };
      };
    };

  # The same three boots for every backend: what is persisted stays, what is not goes, the
  # machine id holds from the first boot on, and no unit fails.
  threeBoots = store: ''
    def boot_and_check(n):
        machine.wait_for_unit("multi-user.target")
        machine.succeed("test ! -e /run/darlings/failed")
        failed = machine.succeed("systemctl --failed --no-legend --plain")
        assert failed.strip() == "", f"boot {n}: failed units: {failed}"
        machine.succeed("findmnt -n /var/lib/kept")
        machine.succeed("findmnt -n /home/alice/Documents")
        assert machine.succeed("stat -c %a ${store}/var/lib/kept").strip() == "750"
        assert machine.succeed("readlink /etc/kept.conf").strip() == "${store}/etc/kept.conf"
        return machine.succeed("cat /etc/machine-id").strip()

    machine.start()
    first = boot_and_check(1)
    machine.succeed("echo kept > /var/lib/kept/file", "echo kept > /home/alice/Documents/file")
    machine.succeed("echo lost > /etc/lost", "sync")
    machine.shutdown()

    machine.start()
    assert boot_and_check(2) == first, "the machine id changed between the first and second boot"
    machine.succeed("grep -qx kept /var/lib/kept/file", "grep -qx kept /home/alice/Documents/file")
    machine.fail("test -e /etc/lost")
    machine.shutdown()

    machine.start()
    assert boot_and_check(3) == first, "the machine id changed on the third boot"
  '';

  btrfs = pkgs.testers.runNixOSTest {
    name = "darlings-btrfs-systemd-initrd";
    nodes.machine =
      { pkgs, ... }:
      {
        imports = [ (common { store = "/persist"; }) ];
        boot.initrd.systemd.enable = true;
        boot.initrd.supportedFilesystems = [ "btrfs" ];
        virtualisation.fileSystems = {
          "/" = {
            device = "/dev/vda";
            fsType = "btrfs";
            options = [ "subvol=root" ];
          };
          "/persist" = {
            device = "/dev/vda";
            fsType = "btrfs";
            options = [ "subvol=persist" ];
            neededForBoot = true;
          };
        };
        darlings.root = {
          backend = "btrfs";
          device = "/dev/vda";
          keep.count = 2;
        };
        # Test set-up only: an empty disk becomes the layout darlings expects.
        boot.initrd.systemd.extraBin = {
          "mkfs.btrfs" = "${pkgs.btrfs-progs}/bin/mkfs.btrfs";
          btrfs = "${pkgs.btrfs-progs}/bin/btrfs";
          blkid = "${pkgs.util-linux}/bin/blkid";
        };
        boot.initrd.systemd.services.format-test-disk = {
          requiredBy = [ "darlings-early.service" ];
          before = [ "darlings-early.service" ];
          after = [ "dev-vda.device" ];
          requires = [ "dev-vda.device" ];
          unitConfig.DefaultDependencies = false;
          serviceConfig.Type = "oneshot";
          script = ''
            if ! blkid /dev/vda; then
              mkfs.btrfs -L nixos /dev/vda
              mkdir -p /format && mount /dev/vda /format
              btrfs subvolume create /format/root
              btrfs subvolume create /format/persist
              btrfs subvolume snapshot -r /format/root /format/root-blank
              umount /format
            fi
          '';
        };
      };
    testScript = threeBoots "/persist";
  };

  zfs = pkgs.testers.runNixOSTest {
    name = "darlings-zfs-scripted";
    nodes.machine =
      { config, ... }:
      {
        imports = [ (common { store = "/persist"; }) ];
        boot.initrd.systemd.enable = false;
        boot.supportedFilesystems = [ "zfs" ];
        networking.hostId = "8425e349";
        # The test framework does not populate /dev/disk/by-id.
        boot.zfs.devNodes = "/dev";
        virtualisation.fileSystems = {
          "/" = {
            device = "rpool/local/root";
            fsType = "zfs";
          };
          "/persist" = {
            device = "rpool/safe/persist";
            fsType = "zfs";
            neededForBoot = true;
          };
        };
        darlings.root = {
          backend = "zfs";
          dataset = "rpool/local/root";
        };
        # Test set-up only, before the ZFS module imports the pool: an empty disk becomes a
        # pool with an empty root and its blank snapshot.
        boot.initrd.postDeviceCommands = lib.mkBefore ''
          if ! zpool import -N -d /dev rpool; then
            zpool create -f -O mountpoint=none -O atime=off rpool /dev/vda
            zfs create -o mountpoint=legacy -p rpool/local/root
            zfs snapshot rpool/local/root@blank
            zfs create -o mountpoint=legacy -p rpool/safe/persist
          fi
          zpool export rpool
        '';
      };
    testScript = threeBoots "/persist";
  };

  tmpfs = pkgs.testers.runNixOSTest {
    name = "darlings-tmpfs-diff";
    nodes.machine = {
      imports = [ (common { store = "/persist"; }) ];
      boot.initrd.systemd.enable = true;
      virtualisation.fileSystems = {
        "/" = {
          device = "none";
          fsType = "tmpfs";
          options = [ "mode=755" ];
        };
        "/persist" = {
          device = "/dev/vda";
          fsType = "ext4";
          autoFormat = true;
          neededForBoot = true;
        };
      };
      darlings.root = {
        backend = "tmpfs";
        size = "25%";
      };
      darlings.diff = {
        onBoot = true;
        reportDir = "/persist/var/log/darlings";
      };
    };
    # The shutdown-time report of the first boot must name what it lost.
    testScript = threeBoots "/persist" + ''
      machine.succeed("grep -rq /etc/lost /persist/var/log/darlings")
    '';
  };
in
{
  darlings-btrfs-systemd-initrd = btrfs;
  darlings-zfs-scripted = zfs;
  darlings-tmpfs-diff = tmpfs;
}

# tests/initrd-check's first Nix tier (no nixpkgs needed): render.nix applied to the example's
# settings and to cases that reach every branch, each rendered to TOML by toml.nix. The check
# writes each to a file, has `darlings plan --json` validate it, and requires every jq condition
# in the case's `expect` to be true of that plan. Values are given as a user writes them
# (strings, partial sets); render.nix fills in the option defaults itself.
let
  render = import ../render.nix;
  toTOML = import ./toml.nix;
  example = (import ../example.nix { pkgs = { }; }).darlings;
  cases = {
    example = example // {
      expect = [
        ".steps | length == 11"
        ''all(.steps[] | select(.op == "bind"); .hide and .nosuid and .nodev)''
        ''any(.steps[]; .target == "/etc/ssh/ssh_host_ed25519_key" and .mode == "0600" and (.parents | map(.mode) | unique) == ["0755"])''
        ''any(.steps[]; .op == "deferred" and .target == "/var/lib/colord")''
        ''[.steps[] | select(.op == "deferred" and (.target | startswith("~alice/")))] | length == 3''
      ];
    };

    btrfs-halt = {
      root = {
        backend = "btrfs";
        device = "/dev/disk/by-label/nixos";
        subvolume = "root";
        blank = "root-blank";
        oldRoots = "old-roots";
        keep = {
          count = 3;
          days = 30;
        };
      };
      onFailure = "halt";
      expect = [
        ''any(.steps[]; .target == "/srv/data" and .uid == 1000 and .gid == 100 and .mode == "0700" and .nosuid == false and .nodev and .parents[0].mode == "0711")''
        ''any(.steps[]; .target == "/var/lib/bluetooth" and .kind == "directory" and .mode == "0755")''
        ''[.steps[] | select(.op == "deferred")] | length == 2''
      ];
      diff = {
        onBoot = false;
        maxEntries = 5000;
      };
      persistence."/persist" = {
        nosuid = false;
        directories = [
          { path = "/srv/data"; user = 1000; group = 100; mode = "0700"; parentDirectory = { user = 0; mode = "0711"; }; }
          { directory = "/var/lib/bluetooth"; }
        ];
        files = [ { path = "/etc/adjtime"; } ];
        users.bob = {
          home = "/home/bob";
          directories = [ { path = "src"; mode = "0755"; } ];
          files = [ ".zsh_history" ];
        };
      };
    };

    tmpfs-two-stores = {
      root = {
        backend = "tmpfs";
        size = "25%";
      };
      expect = [
        ".steps | length == 2"
        ''any(.steps[]; .store == "/state" and .target == "/etc/machine-id" and .hide)''
        ''any(.steps[]; .store == "/persist" and .target == "/var/log" and (.hide | not))''
      ];
      diff = {
        onBoot = true;
        reportDir = "/state/darlings";
      };
      persistence = {
        "/persist".directories = [ "/var/log" ];
        "/state" = {
          hideMounts = true;
          files = [ "/etc/machine-id" ];
        };
        "/old" = {
          enable = false;
          directories = [ "/var/lib/old" ];
        };
      };
    };
  };
in
builtins.mapAttrs (_: c: {
  toml = toTOML (render c);
  inherit (c) expect;
}) cases

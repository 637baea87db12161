# Mount options of the binds: hideMounts for the store with a directory that is not hidden
# (hideMount = false) and one that may keep a trash can (allowTrash), a store with allowTrash,
# and darlings' own nosuid/nodev.
{
  about = "hideMounts, per-directory hideMount and allowTrash, allowTrash, nosuid/nodev";
  forms = [
    "store:hideMounts"
    "entry:hideMount"
    "store:allowTrash"
    "entry:allowTrash"
  ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      fileSystems."/media-store" = {
        device = "/dev/disk/by-label/media";
        fsType = "ext4";
        neededForBoot = true;
      };
      darlings.persistence."/persist" = {
        hideMounts = true;
        nodev = false;
        directories = [
          "/var/log"
          "/var/lib/nixos"
          {
            directory = "/srv/shared";
            hideMount = false;
          }
          {
            directory = "/srv/incoming";
            allowTrash = true;
          }
        ];
      };
      darlings.persistence."/media-store" = {
        allowTrash = true;
        directories = [ "/srv/media" ];
      };
    };
  expect = {
    settings = [
      ''.persist[1] | ."hide-mounts" == false and .nodev == false and .directories == [{path: "/var/log", "hide-mount": true}, {path: "/var/lib/nixos", "hide-mount": true}, {path: "/srv/shared"}, {path: "/srv/incoming", "hide-mount": true, "allow-trash": true}]''
      ''.persist[0] | .store == "/media-store" and ."allow-trash" == true and ."hide-mounts" == false''
    ];
    plan = [
      ''any(.steps[]; .target == "/var/log" and .hide and (.nodev | not))''
      ''any(.steps[]; .target == "/srv/shared" and (.hide | not) and (.trash | not))''
      ''any(.steps[]; .target == "/srv/incoming" and .hide and .trash)''
      ''any(.steps[]; .target == "/srv/media" and .trash)''
    ];
  };
}

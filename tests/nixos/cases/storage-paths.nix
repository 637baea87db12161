# Where entries are kept: an attribute whose name is not a path (persistentStoragePath says
# where), an entry whose own persistentStoragePath sends it to another store (it joins that
# store's [[persist]] table), a disabled store that contributes nothing, and trailing or doubled
# slashes, which impermanence accepts and darlings gets normalised.
{
  about = "persistentStoragePath per store and per entry, enable = false, trailing slashes";
  forms = [
    "store:persistentStoragePath"
    "entry:persistentStoragePath"
    "store:enable"
    "path:trailing-slash"
  ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "none";
        fsType = "tmpfs";
      };
      fileSystems."/persistent" = {
        device = "/dev/disk/by-label/persistent";
        fsType = "xfs";
        neededForBoot = true;
      };
      fileSystems."/scratch" = {
        device = "/dev/disk/by-label/scratch";
        fsType = "ext4";
        neededForBoot = true;
      };
      users.users.frank = {
        isNormalUser = true;
        uid = 1004;
      };
      darlings.enable = true;
      darlings.root.backend = "tmpfs";
      darlings.persistence.main = {
        persistentStoragePath = "/persistent/";
        directories = [
          "/var/log/"
          "/var//lib/nixos"
          {
            directory = "/var/cache/builds/";
            persistentStoragePath = "/scratch";
          }
        ];
        files = [ "/etc/machine-id" ];
        users.frank.directories = [
          "Projects/"
          {
            directory = "/Downloads";
            persistentStoragePath = "/scratch";
          }
        ];
      };
      darlings.persistence."/scratch".files = [ "/var/lib/random-seed" ];
      darlings.persistence."/old" = {
        enable = false;
        directories = [ "/var/lib/old" ];
      };
    };
  expect = {
    settings = [
      ''.persist | map(.store) == ["/persistent", "/scratch"]''
      ''.persist[0].directories == [{path: "/var/log"}, {path: "/var/lib/nixos"}]''
      ''.persist[1].directories == [{path: "/var/cache/builds"}] and .persist[1].files == [{path: "/var/lib/random-seed"}]''
      ''.persist[0].users.frank.directories == [{path: "Projects"}] and .persist[1].users.frank.directories == [{path: "Downloads"}]''
      ''[.persist[].directories[]?.path] | index("/var/lib/old") | not''
    ];
    plan = [ ''any(.steps[]; .target == "/home/frank/Downloads" and .source == "/scratch/home/frank/Downloads")'' ];
  };
}

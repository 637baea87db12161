# Two stores, one inside the other (/persist and /persist/cache, a directory in it), as public
# configurations keep backed-up state apart from caches; no entry of one lies in the other's.
{
  about = "nested stores";
  forms = [ "store:nested" ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "none";
        fsType = "tmpfs";
      };
      fileSystems."/persist" = {
        device = "/dev/disk/by-label/persist";
        fsType = "ext4";
        neededForBoot = true;
      };
      darlings.enable = true;
      darlings.root.backend = "tmpfs";
      darlings.persistence."/persist".directories = [
        "/var/log"
        "/var/lib/nixos"
        "/srv/data"
      ];
      darlings.persistence."/persist/cache" = {
        directories = [
          "/var/cache"
          "/var/lib/docker"
        ];
        files = [ "/var/lib/logrotate.status" ];
      };
    };
  expect = {
    settings = [ ''.persist | map(.store) == ["/persist", "/persist/cache"]'' ];
    plan = [
      ''any(.steps[]; .target == "/var/cache" and .source == "/persist/cache/var/cache")''
      ''any(.steps[]; .target == "/srv/data" and .source == "/persist/srv/data")''
    ];
  };
}

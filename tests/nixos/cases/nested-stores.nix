# Two stores, one inside the other (/persist and /persist/cache, a directory in it), as public
# configurations keep backed-up state apart from caches; no entry of one lies in the other's.
{
  about = "nested stores";
  forms = [
    "store:nested"
    "mode:symbolic-several-actions"
  ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      darlings.persistence."/persist".directories = [
        "/var/log"
        "/var/lib/nixos"
        # chmod's form with two actions in a clause: rwx for the owner, search only for others.
        {
          directory = "/srv/data";
          mode = "u=rwx,go-rwx+X";
        }
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
      ''any(.steps[]; .target == "/srv/data" and .source == "/persist/srv/data" and .mode == "0711")''
    ];
  };
}

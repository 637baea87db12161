# What Home Manager users of impermanence v1 wrote and darlings refuses with what to do: a store
# path with the home in it (v2 and darlings add the home), allowOther and removePrefixDirectory.
{
  about = "Home Manager: v1 store path with the home, allowOther, removePrefixDirectory";
  forms = [
    "home-manager:v1-path-refused"
    "removed:home-manager"
  ];
  module =
    { ... }:
    {
      imports = [
        ../tmpfs-persist.nix
        ../home-manager-stand-in.nix
      ];
      users.users.bird = {
        isNormalUser = true;
        uid = 1000;
      };
      darlings.persistence."/persist".directories = [ "/var/lib/nixos" ];
      home-manager.users.bird.home.persistence."/persist/home/bird" = {
        allowOther = true;
        removePrefixDirectory = true;
        directories = [ "Downloads" ];
      };
    };
  expect.failures = [
    "bird profile: home.persistence.\"/persist/home/bird\": persistentStoragePath /persist/home/bird contains the home directory /home/bird"
    "bird profile: home.persistence.\"/persist/home/bird\".allowOther (set in"
    "bird profile: home.persistence.\"/persist/home/bird\".removePrefixDirectory (set in"
  ];
}

# enableWarnings = false silences darlings' warnings for that store.
{
  about = "enableWarnings = false";
  forms = [ "store:enableWarnings-off" ];
  module =
    { ... }:
    {
      imports = [ ../tmpfs-persist.nix ];
      users.users.hank.isNormalUser = true;
      darlings.persistence."/persist" = {
        enableWarnings = false;
        directories = [ "/var/log" ];
      };
    };
  expect.noWarnings = [ "darlings:" ];
}

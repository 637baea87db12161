# Entries darlings would refuse at boot (where refusing means binding nothing), refused at
# evaluation: a path given twice, an entry with both `directory` and `path`, and root options of
# another backend.
{
  about = "assertions: duplicates, directory and path, stray root keys";
  forms = [
    "refused:duplicate"
    "refused:directory-and-path"
    "refused:root-keys"
  ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "rpool/local/root";
        fsType = "zfs";
      };
      fileSystems."/persist" = {
        device = "rpool/safe/persist";
        fsType = "zfs";
        neededForBoot = true;
      };
      networking.hostId = "8425e349";
      boot.supportedFilesystems = [ "zfs" ];
      darlings.enable = true;
      darlings.root = {
        backend = "zfs";
        dataset = "rpool/other";
        size = "1g";
      };
      darlings.persistence."/persist".directories = [
        "/var/log"
        {
          directory = "/srv/b";
          path = "/srv/b";
        }
      ];
      darlings.persistence.again = {
        persistentStoragePath = "/persist";
        directories = [ "/var/log/" ];
      };
    };
  expect.failures = [
    "darlings: /var/log is persisted twice"
    "darlings.persistence.\"/persist\": an entry must set exactly one of `directory` and `path` (it sets both)"
    "darlings.root.size has no meaning for backend \"zfs\""
    "darlings.root.dataset is \"rpool/other\" but fileSystems.\"/\" mounts \"rpool/local/root\""
  ];
}

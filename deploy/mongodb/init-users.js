// The database users of caesar-rest, one per service, for docker-compose.yml.
//
// The mongo image runs this once, as its root user (caesar-admin, MONGO_INITDB_ROOT_*),
// when it starts on an empty data volume. Each service gets readWrite on its own database
// caesar_<service> and nothing else (libs/common/src/caesar_common/access.py,
// database_roles; tests/unit/test_compose.py checks that this file agrees with it).
// Passwords come from the container's environment (DB_<SERVICE>_PASSWORD from .env,
// written by `make secrets`), never from this file.
const SERVICES = ["api", "scheduler", "runner", "monitor", "accounting"];

const admin = db.getSiblingDB("admin");
for (const service of SERVICES) {
  const variable = `DB_${service.toUpperCase()}_PASSWORD`;
  const password = process.env[variable];
  if (!password) {
    throw new Error(`${variable} is not set: run make secrets, then recreate the mongodb volume`);
  }
  admin.createUser({
    user: `caesar-${service}`,
    pwd: password,
    roles: [{ role: "readWrite", db: `caesar_${service}` }],
  });
  print(`created database user caesar-${service} (readWrite on caesar_${service})`);
}

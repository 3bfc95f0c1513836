/* rm_version, rm_version_number and rm_abi_version against the header's RM_VERSION_* and
 * RM_ABI_VERSION_* defines: the
 * library a program runs with is the one whose header it was compiled with (ffi/tests/run.sh
 * links the library built from the same checkout). Included by ffi_test.c, whose CHECK
 * harness it uses. */

static void test_version(void)
{
	const char *v = rm_version();
	char want[64];
	CHECK(v != NULL);
	if (v == NULL)
		return;
	snprintf(want, sizeof want, "%u.%u.%u", (unsigned)RM_VERSION_MAJOR,
		 (unsigned)RM_VERSION_MINOR, (unsigned)RM_VERSION_PATCH);
	/* Exactly MAJOR.MINOR.PATCH, or that followed by a pre-release or build suffix. */
	CHECK(strncmp(v, want, strlen(want)) == 0);
	CHECK(v[strlen(want)] == '\0' || v[strlen(want)] == '-' || v[strlen(want)] == '+');
	/* Static: the same pointer each call, and nothing to free (valgrind would see a
	 * leak if it were allocated). */
	CHECK(rm_version() == v);
	CHECK(RM_VERSION_NUMBER == ((RM_VERSION_MAJOR << 16) | (RM_VERSION_MINOR << 8) |
				    RM_VERSION_PATCH));
	CHECK(rm_version_number() == RM_VERSION_NUMBER);
	/* The number agrees with the string. */
	unsigned major = 0, minor = 0, patch = 0;
	CHECK(sscanf(v, "%u.%u.%u", &major, &minor, &patch) == 3);
	CHECK(rm_version_number() == ((major << 16) | (minor << 8) | patch));
}

/* The C ABI's version: the number rm_abi_version() returns is the header's RM_ABI_VERSION,
 * made of the two parts, and passes the check ffi/README.md tells a plugin to make. */
static void test_abi_version(void)
{
	uint32_t abi = rm_abi_version();

	CHECK(RM_ABI_VERSION == ((RM_ABI_VERSION_MAJOR << 16) | RM_ABI_VERSION_MINOR));
	CHECK(RM_ABI_VERSION_MINOR <= 0xffff);
	CHECK(RM_ABI_VERSION_MAJOR >= 1);
	CHECK(abi == RM_ABI_VERSION);
	CHECK((abi >> 16) == RM_ABI_VERSION_MAJOR);
	CHECK((abi & 0xffff) == RM_ABI_VERSION_MINOR);
	CHECK(rm_abi_version() == abi);
}

# Copyright 2014-2026 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

DISTUTILS_USE_PEP517=setuptools
PYTHON_COMPAT=( python3_{11..13} )

inherit distutils-r1 systemd tmpfiles

DESCRIPTION="A caching proxy for package downloads (Gentoo distfiles and more)"
HOMEPAGE="https://github.com/wking/package-cache https://pypi.org/project/package-cache/"

if [[ ${PV} == *9999 ]]; then
	inherit git-r3
	EGIT_REPO_URI="https://github.com/wking/package-cache.git"
else
	inherit pypi
	KEYWORDS="~amd64 ~arm64 ~x86"
fi

LICENSE="GPL-3+"
SLOT="0"

RDEPEND="
	acct-user/package-cache
	>=dev-python/tornado-6.5.7[${PYTHON_USEDEP}]
	dev-python/pycurl[${PYTHON_USEDEP}]
	dev-python/prometheus-client[${PYTHON_USEDEP}]
"
BDEPEND="
	test? (
		net-misc/curl
		net-misc/wget
		dev-libs/openssl
	)
"

EPYTEST_PLUGINS=( pytest-timeout )
distutils_enable_tests pytest

python_install_all() {
	distutils-r1_python_install_all

	newinitd contrib/openrc/init.d/package-cache package-cache
	newconfd contrib/openrc/conf.d/package-cache package-cache
	systemd_dounit contrib/systemd/package-cache.service
	systemd_dounit contrib/systemd/package-cache-cull.{service,timer}
	newtmpfiles contrib/systemd/package-cache.tmpfiles package-cache.conf
	insinto /etc
	doins package-cache.conf
	keepdir /var/cache/package-cache
	fowners package-cache:portage /var/cache/package-cache
}

pkg_postinst() {
	tmpfiles_process package-cache.conf
	elog "Set SOURCES and CACHE_DIR in /etc/conf.d/package-cache (or PC_CONFIG"
	elog "to use /etc/package-cache.conf), then:"
	elog "  rc-update add package-cache default && rc-service package-cache start"
	elog "and point Portage at it: GENTOO_MIRRORS=\"http://<this host>:4000/\""
}

def pytest_addoption(parser):
    parser.addoption("--voxq", required=True, help="path of the voxq program")


import pytest  # noqa: E402


@pytest.fixture
def voxq(request):
    return request.config.getoption("--voxq")

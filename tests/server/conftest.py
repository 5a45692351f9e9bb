def pytest_addoption(parser):
    parser.addoption("--voxq", action="store", default=None, help="the voxq binary under test")

def pytest_addoption(parser):
    parser.addoption("--voxq", action="store", default=None, help="the voxq binary under test")
    parser.addoption("--sanitized", action="store_true", default=False,
                     help="the binary is a sanitizer build: its RSS is not the product's")

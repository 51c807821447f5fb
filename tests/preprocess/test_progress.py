from services.preprocess.progress import Progress


def test_watermark_is_the_end_of_the_finished_prefix() -> None:
    progress = Progress()
    for cursor in ("1", "2", "3", "4"):
        assert progress.start(cursor)
    assert not progress.start("2")  # re-delivered while in flight

    assert not progress.finish("3")  # 1 and 2 still running
    assert progress.watermark == ""
    assert progress.finish("1")
    assert progress.watermark == "1"
    assert progress.finish("2")
    assert progress.watermark == "3"  # 3 had finished already
    assert progress.in_flight == 1
    assert progress.finish("4")
    assert progress.watermark == "4" and progress.in_flight == 0
    assert not progress.finish("4")

import numpy as np

from edge.segment.holefill import close_borders, fill_holes, hole_fill, is_vertical


def vertical_blade(height=120, width=160, left=60, right=100):
    mask = np.zeros((height, width), bool)
    mask[:, left:right] = True
    return mask


def test_fill_holes_fills_enclosed_holes_only():
    mask = vertical_blade()
    mask[50:60, 70:80] = False          # enclosed hole
    mask[0:10, 70:80] = False           # hole open to the top border
    filled = fill_holes(mask)
    assert filled[50:60, 70:80].all()
    assert not filled[0:10, 70:80].any()


def test_orientation_from_sobel_gradients():
    blade = vertical_blade()
    assert is_vertical(blade)
    assert not is_vertical(blade.T.copy())


def test_vertical_blade_with_holes_touching_top_and_bottom():
    truth = vertical_blade()
    mask = truth.copy()
    mask[0:15, 70:85] = False           # touches the top border
    mask[100:, 65:90] = False           # touches the bottom border
    mask[40:50, 75:80] = False          # enclosed
    np.testing.assert_array_equal(hole_fill(mask), truth)


def test_horizontal_blade_with_holes_touching_left_and_right():
    truth = vertical_blade().T.copy()
    mask = truth.copy()
    mask[70:80, 0:12] = False           # touches the left border
    mask[65:85, 150:] = False           # touches the right border
    np.testing.assert_array_equal(hole_fill(mask), truth)


def test_hole_along_a_side_border_is_not_closed_across_the_blade_axis():
    # A vertical blade: the closing runs along top and bottom only, never along the left border.
    mask = np.zeros((120, 160), bool)
    mask[:, 0:40] = True
    mask[50:70, 0:10] = False           # notch on the left border, beside the blade
    closed = close_borders(mask, vertical=True)
    assert not closed[50:70, 0].any()


def test_space_between_two_blades_is_not_filled():
    # Two vertical blades joined through a hub (one component), both reaching the bottom border.
    mask = np.zeros((120, 200), bool)
    mask[:, 20:40] = True
    mask[:, 160:180] = True
    mask[10:30, 20:180] = True          # hub
    result = hole_fill(mask)
    assert not result[60:, 60:140].any()


def test_empty_mask_stays_empty():
    assert not hole_fill(np.zeros((30, 40), bool)).any()
